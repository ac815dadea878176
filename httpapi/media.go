package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/mediafiles"
)

// The media repository: uploads (POST /_matrix/media/v3/upload), the
// media config, downloads and thumbnails, both on the deprecated
// unauthenticated /_matrix/media/v3 paths (which clients still call) and
// on the authenticated /_matrix/client/v1/media paths. Files live in a
// content-addressed mediafiles.Store; their metadata in persistence.
// Other servers' media is fetched over federation on an authenticated
// download or thumbnail request, and cached as a media row with the
// remote server name (the key is always the pair: a remote item is never
// taken for a local one); the unauthenticated paths serve only what is
// cached, as the spec's media freeze asks.

// MediaOptions configures the media repository.
type MediaOptions struct {
	// Files holds the uploaded content and thumbnails; nil serves no media
	// endpoints (they answer 404 M_UNRECOGNIZED).
	Files *mediafiles.Store
	// MaxUploadSize is the largest upload accepted, in bytes.
	MaxUploadSize int64
}

// mediaCSP is the Content-Security-Policy of served media, as Synapse
// sends it: a browser that opens a file renders it sandboxed, without
// scripts.
const mediaCSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"

// maxUploadNameBytes bounds the file name an upload may carry.
const maxUploadNameBytes = 1024

// inlineContentTypes are the types served with Content-Disposition:
// inline, the spec's list of those unlikely to enable cross-site
// scripting; anything else is an attachment.
var inlineContentTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true,
	"image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true,
	"audio/flac": true, "audio/x-flac": true,
}

// mediaState is what the media handlers share across requests.
type mediaState struct {
	// thumbs makes concurrent requests for one thumbnail generate it once.
	thumbs singleflight.Group
	// generating bounds the thumbnails decoded at once: a decoded image
	// may take hundreds of megabytes.
	generating chan struct{}
	// fetches makes concurrent requests for one remote item fetch it once.
	fetches singleflight.Group
}

func newMediaState() *mediaState {
	return &mediaState{generating: make(chan struct{}, 2)}
}

// mediaRoutes registers the media endpoints when a file store is
// configured.
func (s *Server) mediaRoutes(r chi.Router) {
	if s.opts.Media.Files == nil {
		return
	}
	legacy := func(r chi.Router) {
		r.Get("/config", s.serve(s.authed(s.mediaConfig)))
		r.Post("/upload", s.serve(s.authed(s.uploadMedia)))
		r.Get("/download/{serverName}/{mediaId}", s.mediaHandler(false, s.downloadMedia))
		r.Get("/download/{serverName}/{mediaId}/{fileName}", s.mediaHandler(false, s.downloadMedia))
		r.Get("/thumbnail/{serverName}/{mediaId}", s.mediaHandler(false, s.thumbnailMedia))
	}
	r.Route("/_matrix/media/v3", legacy)
	r.Route("/_matrix/media/r0", legacy)
	r.Route("/_matrix/client/v1/media", func(r chi.Router) {
		r.Get("/config", s.serve(s.authed(s.mediaConfig)))
		r.Get("/download/{serverName}/{mediaId}", s.mediaHandler(true, s.downloadMedia))
		r.Get("/download/{serverName}/{mediaId}/{fileName}", s.mediaHandler(true, s.downloadMedia))
		r.Get("/thumbnail/{serverName}/{mediaId}", s.mediaHandler(true, s.thumbnailMedia))
	})
}

// mediaFileHandler writes a file response itself; it returns an error
// (rendered as a Matrix error) only before it has written anything.
type mediaFileHandler func(w http.ResponseWriter, r *http.Request) error

// mediaHandler adapts a mediaFileHandler, requiring an access token when
// authenticated is set.
func (s *Server) mediaHandler(authenticated bool, h mediaFileHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		run := handlerFunc(func(r *http.Request) (int, any, error) { return 0, nil, h(w, r) })
		if authenticated {
			run = s.authed(run)
		}
		if _, _, err := run(r); err != nil {
			s.serve(func(*http.Request) (int, any, error) { return 0, nil, err })(w, r)
		}
	}
}

// mediaConfig: GET /config, the upload limit.
func (s *Server) mediaConfig(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{"m.upload.size": s.opts.Media.MaxUploadSize}, nil
}

func errTooLarge(msg string) *MatrixError {
	return matrixError(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", msg)
}

// uploadMedia: POST /upload?filename=, the body is the content. It is
// streamed to disk and refused past the limit, never held in memory.
func (s *Server) uploadMedia(r *http.Request) (int, any, error) {
	limit := s.opts.Media.MaxUploadSize
	tooLarge := errTooLarge("Upload is larger than the limit of " + strconv.FormatInt(limit, 10) + " bytes")
	if r.ContentLength > limit {
		return 0, nil, tooLarge
	}
	name := r.URL.Query().Get("filename")
	if len(name) > maxUploadNameBytes || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return 0, nil, errInvalidParam("filename must be valid UTF-8 without control characters, at most 1024 bytes")
	}
	sum, size, err := s.opts.Media.Files.Put(r.Body, limit)
	if errors.Is(err, mediafiles.ErrTooLarge) {
		return 0, nil, tooLarge
	}
	if err != nil {
		return 0, nil, err
	}
	c := callerFrom(r.Context())
	m := persistence.Media{
		ServerName: s.opts.ServerName, ContentType: uploadContentType(r.Header.Get("Content-Type")),
		UploadName: name, Size: size, SHA256: sum, Uploader: c.UserID, CreatedTS: time.Now().UnixMilli(),
	}
	for attempt := 0; ; attempt++ {
		m.MediaID = newMediaID()
		err = s.store.InsertMedia(r.Context(), m)
		if !errors.Is(err, persistence.ErrMediaExists) || attempt == 2 {
			break
		}
	}
	if err != nil {
		return 0, nil, err
	}
	zerolog.Ctx(r.Context()).Info().Str("media_id", m.MediaID).Int64("size", size).Str("content_type", m.ContentType).Msg("media uploaded")
	return http.StatusOK, map[string]string{"content_uri": "mxc://" + m.ServerName + "/" + m.MediaID}, nil
}

// newMediaID is 192 random bits, URL-safe base64: only A-Za-z0-9_-, as
// the spec requires of media IDs.
func newMediaID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// uploadContentType is the type an upload is stored with: as the client
// sent it when it parses as a media type, else application/octet-stream.
func uploadContentType(ct string) string {
	ct = strings.TrimSpace(ct)
	if ct == "" || len(ct) > 255 {
		return "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return "application/octet-stream"
	}
	return ct
}

// validMediaID allows what the spec allows: A-Za-z0-9, _ and -.
func validMediaID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// requestedMedia returns the item the path names, local or remote
// (fetched when the request is authenticated and it is not cached): 400
// M_INVALID_PARAM for a malformed server name or media ID, 404
// M_NOT_FOUND for an unknown item.
func (s *Server) requestedMedia(r *http.Request) (*persistence.Media, error) {
	serverName, err := urlParam(r, "serverName")
	if err != nil {
		return nil, err
	}
	mediaID, err := urlParam(r, "mediaId")
	if err != nil {
		return nil, err
	}
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(serverName)); !ok {
		return nil, errInvalidParam("Invalid server name")
	}
	if !validMediaID(mediaID) {
		return nil, errInvalidParam("Invalid media ID: only A-Z, a-z, 0-9, _ and - are allowed")
	}
	m, err := s.store.GetMedia(r.Context(), serverName, mediaID)
	if errors.Is(err, persistence.ErrNotFound) && serverName != s.opts.ServerName && callerFrom(r.Context()) != nil {
		m, err = s.fetchRemoteMedia(r, serverName, mediaID)
	}
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, errNotFound("Media not found")
	}
	if err != nil {
		return nil, err
	}
	logFields(r.Context(), func(c zerolog.Context) zerolog.Context { return c.Str("media_id", mediaID) })
	return m, nil
}

// fetchRemoteMedia downloads a remote item over federation, stores it
// (its file under the size limit, its row keyed by the remote server
// name) and returns its row. Concurrent requests for one item share one
// download.
func (s *Server) fetchRemoteMedia(r *http.Request, serverName, mediaID string) (*persistence.Media, error) {
	if s.opts.RemoteMedia == nil {
		return nil, errNotFound("Remote media is not fetched: federation is off on this server")
	}
	log := zerolog.Ctx(r.Context()).With().Str("server_name", serverName).Str("media_id", mediaID).Logger()
	// The download outlives a caller that goes away: others may wait on it.
	ctx := context.WithoutCancel(r.Context())
	v, err, _ := s.media.fetches.Do(serverName+"/"+mediaID, func() (any, error) {
		if m, err := s.store.GetMedia(ctx, serverName, mediaID); err == nil {
			return m, nil // fetched meanwhile
		}
		rm, err := s.opts.RemoteMedia.DownloadMedia(ctx, spec.ServerName(serverName), mediaID)
		if errors.Is(err, federation.ErrRemoteNotFound) {
			return nil, persistence.ErrNotFound
		}
		if err != nil {
			log.Warn().Err(err).Msg("remote media download failed")
			return nil, matrixError(http.StatusBadGateway, "M_UNKNOWN", "Could not fetch the media from its server")
		}
		defer rm.Content.Close()
		limit := s.opts.Media.MaxUploadSize
		sum, size, err := s.opts.Media.Files.Put(rm.Content, limit)
		if errors.Is(err, mediafiles.ErrTooLarge) {
			log.Warn().Int64("limit", limit).Msg("remote media larger than media.max_upload_size")
			return nil, matrixError(http.StatusBadGateway, "M_TOO_LARGE", "The media is larger than this server's limit of "+strconv.FormatInt(limit, 10)+" bytes")
		}
		if err != nil {
			log.Warn().Err(err).Msg("remote media download failed")
			return nil, matrixError(http.StatusBadGateway, "M_UNKNOWN", "Could not fetch the media from its server")
		}
		name := rm.FileName
		if len(name) > maxUploadNameBytes || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
			name = ""
		}
		m := persistence.Media{
			ServerName: serverName, MediaID: mediaID, ContentType: uploadContentType(rm.ContentType),
			UploadName: name, Size: size, SHA256: sum, CreatedTS: time.Now().UnixMilli(),
		}
		if err := s.store.InsertMedia(ctx, m); err != nil && !errors.Is(err, persistence.ErrMediaExists) {
			return nil, err
		}
		log.Info().Int64("size", size).Str("content_type", m.ContentType).Msg("remote media cached")
		return s.store.GetMedia(ctx, serverName, mediaID)
	})
	if err != nil {
		return nil, err
	}
	return v.(*persistence.Media), nil
}

// downloadMedia: GET /download/{serverName}/{mediaId}[/{fileName}].
func (s *Server) downloadMedia(w http.ResponseWriter, r *http.Request) error {
	m, err := s.requestedMedia(r)
	if err != nil {
		return err
	}
	name := m.UploadName
	if chi.URLParam(r, "fileName") != "" {
		if name, err = urlParam(r, "fileName"); err != nil {
			return err
		}
	}
	f, err := s.openMediaFile(m.SHA256)
	if err != nil {
		return err
	}
	defer f.Close()
	disposition := contentDisposition(inlineContentTypes[baseMediaType(m.ContentType)], name)
	s.serveMediaContent(w, r, f, m.ContentType, disposition, m.SHA256, m.CreatedTS)
	return nil
}

// openMediaFile opens a stored file; a file missing from disk is the
// operator's problem, logged, and a 404 for the client.
func (s *Server) openMediaFile(sum string) (*os.File, error) {
	f, err := s.opts.Media.Files.Open(sum)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Error().Str("sha256", sum).Str("dir", s.opts.Media.Files.Root()).Msg("media file missing from disk")
		return nil, errNotFound("Media file not found")
	}
	return f, err
}

// serveMediaContent writes a stored file with the headers the spec asks
// of served media. Media never changes: its SHA-256 is its ETag and it
// may be cached for a year (privately when the request was
// authenticated). http.ServeContent adds Range and conditional requests.
func (s *Server) serveMediaContent(w http.ResponseWriter, r *http.Request, content io.ReadSeeker, contentType, disposition, sum string, createdTS int64) {
	h := w.Header()
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Security-Policy", mediaCSP)
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	cache := "public"
	if callerFrom(r.Context()) != nil {
		cache = "private"
	}
	h.Set("Cache-Control", cache+", max-age=31536000, immutable")
	h.Set("ETag", `"`+sum+`"`)
	http.ServeContent(w, r, "", time.UnixMilli(createdTS), content)
}

// contentDisposition is "inline" or "attachment", with the file name
// when there is one (RFC 6266; non-ASCII names percent-encoded in filename*).
func contentDisposition(inline bool, filename string) string {
	kind := "attachment"
	if inline {
		kind = "inline"
	}
	if filename == "" {
		return kind
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": filename}); v != "" {
		return v
	}
	return kind
}

// baseMediaType is the lower-case type of a Content-Type, without its
// parameters; "" when it does not parse.
func baseMediaType(ct string) string {
	t, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return t
}
