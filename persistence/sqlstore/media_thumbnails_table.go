package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// media_thumbnails: the thumbnails generated for a media item, one per
// (width, height, method) of the thumbnail itself; the file is on disk
// like the media's, named by its SHA-256.

const insertMediaThumbnailSQL = `
INSERT INTO media_thumbnails (server_name, media_id, width, height, method, content_type, file_size, sha256, created_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (server_name, media_id, width, height, method) DO NOTHING`

const selectMediaThumbnailsSQL = `
SELECT server_name, media_id, width, height, method, content_type, file_size, sha256, created_ts
FROM media_thumbnails WHERE server_name = $1 AND media_id = $2
ORDER BY width, height, method`

type mediaThumbnailsTable struct {
	insert, selectForMedia *sql.Stmt
}

func prepareMediaThumbnailsTable(p *preparer) *mediaThumbnailsTable {
	return &mediaThumbnailsTable{
		insert:         p.prepare(insertMediaThumbnailSQL),
		selectForMedia: p.prepare(selectMediaThumbnailsSQL),
	}
}

// InsertThumbnail keeps an existing row for the same key.
func (t *mediaThumbnailsTable) InsertThumbnail(ctx context.Context, tx *sql.Tx, th *persistence.Thumbnail) error {
	_, err := txStmt(ctx, tx, t.insert).ExecContext(ctx,
		th.ServerName, th.MediaID, th.Width, th.Height, th.Method, th.ContentType, th.Size, th.SHA256, th.CreatedTS)
	return err
}

func (t *mediaThumbnailsTable) SelectThumbnails(ctx context.Context, serverName, mediaID string) ([]persistence.Thumbnail, error) {
	rows, err := t.selectForMedia.QueryContext(ctx, serverName, mediaID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.Thumbnail
	for rows.Next() {
		var th persistence.Thumbnail
		if err := rows.Scan(&th.ServerName, &th.MediaID, &th.Width, &th.Height, &th.Method,
			&th.ContentType, &th.Size, &th.SHA256, &th.CreatedTS); err != nil {
			return nil, err
		}
		out = append(out, th)
	}
	return out, rows.Err()
}
