package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// media: one row per item of the media repository, keyed by the server
// name and media ID of its mxc:// URI. The file is on disk, named by its
// SHA-256, so that identical uploads share one file.

const insertMediaSQL = `
INSERT INTO media (server_name, media_id, content_type, upload_name, file_size, sha256, uploader, created_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (server_name, media_id) DO NOTHING`

const selectMediaSQL = `
SELECT server_name, media_id, content_type, upload_name, file_size, sha256, uploader, created_ts
FROM media WHERE server_name = $1 AND media_id = $2`

type mediaTable struct {
	insert, selectOne *sql.Stmt
}

func prepareMediaTable(p *preparer) *mediaTable {
	return &mediaTable{
		insert:    p.prepare(insertMediaSQL),
		selectOne: p.prepare(selectMediaSQL),
	}
}

// InsertMedia reports false when the server name and media ID are taken.
func (t *mediaTable) InsertMedia(ctx context.Context, tx *sql.Tx, m *persistence.Media) (bool, error) {
	res, err := txStmt(ctx, tx, t.insert).ExecContext(ctx,
		m.ServerName, m.MediaID, m.ContentType, m.UploadName, m.Size, m.SHA256, m.Uploader, m.CreatedTS)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SelectMedia returns sql.ErrNoRows for an unknown item.
func (t *mediaTable) SelectMedia(ctx context.Context, serverName, mediaID string) (*persistence.Media, error) {
	var m persistence.Media
	err := t.selectOne.QueryRowContext(ctx, serverName, mediaID).Scan(
		&m.ServerName, &m.MediaID, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256, &m.Uploader, &m.CreatedTS)
	if err != nil {
		return nil, err
	}
	return &m, nil
}
