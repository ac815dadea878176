package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/persistence"
)

// Media across servers (authenticated media, spec v1.11): the inbound
// GET /_matrix/federation/v1/media/download/{mediaId} serving this
// server's own media, and the outbound download the client API uses for
// other servers' media. The answer is multipart/mixed: a JSON part
// (metadata, "{}" for now) then the content, or a part with a Location
// header to fetch it from.

// MediaReader is what the media download needs of persistence.
type MediaReader interface {
	// GetMedia returns persistence.ErrNotFound for an unknown item.
	GetMedia(ctx context.Context, serverName, mediaID string) (*persistence.Media, error)
}

// GET /_matrix/federation/v1/media/download/{mediaId}: a local media
// item. Remote media this server has cached is not served: each server
// answers for its own.
func (s *Server) getMediaDownload(w http.ResponseWriter, r *http.Request) {
	mediaID := chi.URLParam(r, "mediaId")
	m, err := s.media.GetMedia(r.Context(), string(s.self.ServerName), mediaID)
	if errors.Is(err, persistence.ErrNotFound) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Media not found")
		return
	}
	if err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("reading media metadata failed")
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not read the media")
		return
	}
	f, err := s.mediaFiles.Open(m.SHA256)
	if errors.Is(err, fs.ErrNotExist) {
		zerolog.Ctx(r.Context()).Error().Str("sha256", m.SHA256).Msg("media file missing from disk")
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Media file not found")
		return
	}
	if err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("opening a media file failed")
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Could not read the media")
		return
	}
	defer f.Close()

	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err == nil {
		_, err = io.WriteString(meta, "{}")
	}
	var content io.Writer
	if err == nil {
		h := textproto.MIMEHeader{"Content-Type": {contentTypeOrDefault(m.ContentType)}}
		if m.UploadName != "" {
			if d := mime.FormatMediaType("attachment", map[string]string{"filename": m.UploadName}); d != "" {
				h.Set("Content-Disposition", d)
			}
		}
		content, err = mw.CreatePart(h)
	}
	if err == nil {
		_, err = io.Copy(content, f)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		// Headers are gone: the remote server sees a truncated body.
		zerolog.Ctx(r.Context()).Warn().Err(err).Msg("writing a media download failed")
	}
}

func contentTypeOrDefault(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// RemoteMedia is a media item another server is sending: Content is its
// bytes (the caller closes it).
type RemoteMedia struct {
	ContentType string
	// FileName is the name from the content's Content-Disposition, "" for none.
	FileName string
	Content  io.ReadCloser
}

// ErrMediaRedirect is returned when the remote server answers with a
// Location part (the content is elsewhere): not followed yet.
var ErrMediaRedirect = errors.New("federation: the remote server redirects media downloads elsewhere")

// DownloadMedia asks server for one of its media items (GET
// /_matrix/federation/v1/media/download/{mediaId}). A 404 is
// ErrRemoteNotFound; the caller checks mediaID (the spec's characters).
func (c *Client) DownloadMedia(ctx context.Context, server spec.ServerName, mediaID string) (*RemoteMedia, error) {
	if server == c.self.ServerName {
		return nil, fmt.Errorf("federation.DownloadMedia: %s is this server", server)
	}
	res, err := c.fed.DownloadMedia(ctx, c.self.ServerName, server, mediaID)
	if err != nil {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: %w", server, err)
	}
	ok := false
	defer func() {
		if !ok {
			res.Body.Close()
		}
	}()
	if res.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: %w", server, ErrRemoteNotFound)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: status %d", server, res.StatusCode)
	}
	mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: not multipart/mixed: %q", server, res.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(res.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: metadata part: %w", server, err)
	}
	// The metadata is "{}" in v1.11; nothing in it is used yet.
	if _, err := io.Copy(io.Discard, io.LimitReader(meta, 64<<10)); err != nil {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: metadata part: %w", server, err)
	}
	part, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: content part: %w", server, err)
	}
	if part.Header.Get("Location") != "" {
		return nil, fmt.Errorf("federation.DownloadMedia from %s: %w", server, ErrMediaRedirect)
	}
	m := &RemoteMedia{ContentType: part.Header.Get("Content-Type"), Content: readCloser{part, res.Body}}
	if _, p, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
		m.FileName = p["filename"]
	}
	ok = true
	return m, nil
}

// readCloser reads a part and closes the response it is in.
type readCloser struct {
	io.Reader
	io.Closer
}
