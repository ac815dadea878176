package persistence

import (
	"context"
	"errors"
)

// ErrMediaExists is returned by InsertMedia when the (server name, media
// ID) pair is already stored.
var ErrMediaExists = errors.New("persistence: media exists")

// Media is the metadata of one item of the media repository: the file
// itself lives on disk, named by its SHA-256 (see mediafiles).
type Media struct {
	ServerName  string
	MediaID     string
	ContentType string
	// UploadName is the file name the uploader gave, "" for none.
	UploadName string
	Size       int64
	SHA256     string // lower-case hex
	// Uploader is the local user who uploaded it ("" for remote media).
	Uploader  string
	CreatedTS int64 // Unix milliseconds
}

// Thumbnail is one generated thumbnail of a media item. Width and Height
// are the thumbnail's own dimensions; Method is "scale" or "crop".
type Thumbnail struct {
	ServerName  string
	MediaID     string
	Width       int
	Height      int
	Method      string
	ContentType string
	Size        int64
	SHA256      string
	CreatedTS   int64
}

// MediaStore keeps the media repository's metadata.
type MediaStore interface {
	// InsertMedia stores a media item; ErrMediaExists when its server
	// name and media ID are taken (nothing is changed then).
	InsertMedia(ctx context.Context, m Media) error
	// GetMedia returns ErrNotFound for an unknown item.
	GetMedia(ctx context.Context, serverName, mediaID string) (*Media, error)
	// InsertThumbnail stores a thumbnail. One already stored for the same
	// media, width, height and method is kept and not an error: two
	// requests may generate the same thumbnail at once.
	InsertThumbnail(ctx context.Context, t Thumbnail) error
	// Thumbnails returns the thumbnails of a media item, ordered by width,
	// height and method; none for an unknown item.
	Thumbnails(ctx context.Context, serverName, mediaID string) ([]Thumbnail, error)
}
