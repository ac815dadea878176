package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/gif" // decoders for image.Decode
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // decode only: thumbnails are JPEG or PNG

	"github.com/soma-chat/soma/persistence"
)

// Thumbnails, generated on demand and cached (file and media_thumbnails
// row) by their own size and method:
//
//   - scale keeps the aspect ratio and fits the requested box;
//   - crop fills the requested box exactly, cutting the overflow evenly;
//   - nothing is ever upscaled: an image that already fits the box (or a
//     box past maxThumbnailSide) is answered with the original, as the
//     spec asks, and a crop box larger than the image shrinks, keeping
//     its aspect ratio, until it fits.
//
// JPEG, PNG, GIF (its first frame) and WebP are thumbnailed, into JPEG,
// or PNG when the image is not opaque. Animated thumbnails are not made
// (the animated parameter is ignored, which the spec allows).

// thumbnailableTypes are the media types thumbnails are made of.
var thumbnailableTypes = map[string]bool{
	"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true,
}

const (
	// maxThumbnailSourcePixels refuses decompression bombs: a larger image
	// is not decoded (413 M_TOO_LARGE). 40 MP decodes to 160 MB.
	maxThumbnailSourcePixels = 40_000_000
	// maxThumbnailSide: a box larger than this in either dimension gets
	// the original rather than a huge generated thumbnail.
	maxThumbnailSide = 3200
	// maxCachedThumbnails bounds the thumbnails kept per item: a client
	// asking for ever new sizes gets them generated, not stored.
	maxCachedThumbnails  = 32
	thumbnailJPEGQuality = 85
)

func errCannotThumbnail() *MatrixError {
	return matrixError(http.StatusBadRequest, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")
}

// thumbnailMedia: GET /thumbnail/{serverName}/{mediaId}?width=&height=&method=.
func (s *Server) thumbnailMedia(w http.ResponseWriter, r *http.Request) error {
	width, height, method, err := thumbnailParams(r)
	if err != nil {
		return err
	}
	m, err := s.requestedMedia(r)
	if err != nil {
		return err
	}
	if !thumbnailableTypes[baseMediaType(m.ContentType)] {
		return errCannotThumbnail()
	}
	f, err := s.openMediaFile(m.SHA256)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return errCannotThumbnail()
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return errCannotThumbnail()
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxThumbnailSourcePixels {
		return errTooLarge("Content is too large to thumbnail")
	}
	tw, th, original := thumbnailSize(cfg.Width, cfg.Height, width, height, method)
	if original {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		s.serveMediaContent(w, r, f, m.ContentType, contentDisposition(true, "thumbnail"+thumbnailExt(m.ContentType)), m.SHA256, m.CreatedTS)
		return nil
	}

	cached, err := s.store.Thumbnails(r.Context(), m.ServerName, m.MediaID)
	if err != nil {
		return err
	}
	for _, c := range cached {
		if c.Width == tw && c.Height == th && c.Method == method {
			if cf, err := s.opts.Media.Files.Open(c.SHA256); err == nil {
				defer cf.Close()
				s.serveThumbnail(w, r, cf, &c)
				return nil
			}
			break // the file is gone: generate it again
		}
	}
	key := fmt.Sprintf("%s/%s/%dx%d/%s", m.ServerName, m.MediaID, tw, th, method)
	v, err, _ := s.media.thumbs.Do(key, func() (any, error) {
		// Not the first requester's cancellation: others may wait on it.
		return s.generateThumbnail(context.WithoutCancel(r.Context()), m, f.Name(), tw, th, method, len(cached) < maxCachedThumbnails)
	})
	if err != nil {
		return err
	}
	g := v.(*generatedThumbnail)
	s.serveThumbnail(w, r, bytes.NewReader(g.data), &g.Thumbnail)
	return nil
}

// thumbnailParams reads width, height (required, positive integers) and
// method (scale, the default, or crop).
func thumbnailParams(r *http.Request) (width, height int, method string, err error) {
	q := r.URL.Query()
	dim := func(name string) (int, error) {
		v := q.Get(name)
		if v == "" {
			return 0, errMissingParam("Missing " + name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, errInvalidParam(name + " must be a positive integer")
		}
		return n, nil
	}
	if width, err = dim("width"); err != nil {
		return
	}
	if height, err = dim("height"); err != nil {
		return
	}
	switch method = q.Get("method"); method {
	case "":
		method = "scale"
	case "scale", "crop":
	default:
		return 0, 0, "", errInvalidParam("method must be scale or crop")
	}
	return width, height, method, nil
}

// thumbnailSize is the size of the thumbnail of a sw×sh image for a
// bw×bh box, or original when the original is the answer: it fits the
// box already, or the box is past maxThumbnailSide.
func thumbnailSize(sw, sh, bw, bh int, method string) (w, h int, original bool) {
	if sw <= bw && sh <= bh || bw > maxThumbnailSide || bh > maxThumbnailSide {
		return 0, 0, true
	}
	if method == "crop" {
		// Shrink the box to fit the image (never upscale), keeping its
		// aspect ratio.
		k := math.Min(1, math.Min(float64(sw)/float64(bw), float64(sh)/float64(bh)))
		return max(1, int(math.Round(float64(bw)*k))), max(1, int(math.Round(float64(bh)*k))), false
	}
	k := math.Min(float64(bw)/float64(sw), float64(bh)/float64(sh))
	return max(1, int(math.Round(float64(sw)*k))), max(1, int(math.Round(float64(sh)*k))), false
}

// generatedThumbnail is a thumbnail just made, with its bytes.
type generatedThumbnail struct {
	persistence.Thumbnail
	data []byte
}

// generateThumbnail decodes the image at path, resizes it and stores the
// result (file, and a row when store is set).
func (s *Server) generateThumbnail(ctx context.Context, m *persistence.Media, path string, w, h int, method string, store bool) (*generatedThumbnail, error) {
	select {
	case s.media.generating <- struct{}{}:
		defer func() { <-s.media.generating }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		return nil, errCannotThumbnail()
	}
	data, contentType, err := renderThumbnail(src, w, h, method)
	if err != nil {
		return nil, err
	}
	g := &generatedThumbnail{data: data, Thumbnail: persistence.Thumbnail{
		ServerName: m.ServerName, MediaID: m.MediaID, Width: w, Height: h, Method: method,
		ContentType: contentType, Size: int64(len(data)), CreatedTS: time.Now().UnixMilli(),
	}}
	sum, _, err := s.opts.Media.Files.Put(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	g.SHA256 = sum
	if store {
		// A thumbnail that cannot be recorded is still served.
		if err := s.store.InsertThumbnail(ctx, g.Thumbnail); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("media_id", m.MediaID).Msg("thumbnail not recorded")
		}
	}
	zerolog.Ctx(ctx).Debug().Str("media_id", m.MediaID).Int("width", w).Int("height", h).Str("method", method).
		Dur("took", time.Since(start)).Msg("thumbnail generated")
	return g, nil
}

// renderThumbnail resizes src to exactly w×h: scaled whole (scale), or
// from the centred part of it with the thumbnail's aspect ratio (crop).
// It returns the encoded image and its type.
func renderThumbnail(src image.Image, w, h int, method string) ([]byte, string, error) {
	b := src.Bounds()
	from := b
	if method == "crop" {
		sw, sh := b.Dx(), b.Dy()
		// The largest centred rectangle of the thumbnail's aspect ratio.
		cw, ch := sw, int(math.Round(float64(sw)*float64(h)/float64(w)))
		if ch > sh {
			cw, ch = int(math.Round(float64(sh)*float64(w)/float64(h))), sh
		}
		cw, ch = max(1, min(cw, sw)), max(1, min(ch, sh))
		x0, y0 := b.Min.X+(sw-cw)/2, b.Min.Y+(sh-ch)/2
		from = image.Rect(x0, y0, x0+cw, y0+ch)
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, from, draw.Src, nil)
	var buf bytes.Buffer
	if o, ok := src.(interface{ Opaque() bool }); ok && o.Opaque() {
		if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: thumbnailJPEGQuality}); err != nil {
			return nil, "", fmt.Errorf("thumbnail: %w", err)
		}
		return buf.Bytes(), "image/jpeg", nil
	}
	if err := png.Encode(&buf, dst); err != nil {
		return nil, "", fmt.Errorf("thumbnail: %w", err)
	}
	return buf.Bytes(), "image/png", nil
}

func (s *Server) serveThumbnail(w http.ResponseWriter, r *http.Request, content io.ReadSeeker, t *persistence.Thumbnail) {
	s.serveMediaContent(w, r, content, t.ContentType, contentDisposition(true, "thumbnail"+thumbnailExt(t.ContentType)), t.SHA256, t.CreatedTS)
}

// thumbnailExt is the file name extension of a thumbnailable type.
func thumbnailExt(contentType string) string {
	switch baseMediaType(contentType) {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	}
	return ""
}
