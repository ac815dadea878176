package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The media repository through the real binary: uploads of a PNG and a
// JPEG come back byte-identical, thumbnails have the asked dimensions,
// and the files live content-addressed under <data_dir>/media.
func TestMediaUploadDownloadAndThumbnails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		alice := srv.register("alice")

		pngBytes := encodeTestImage(t, "png", 640, 480)
		jpegBytes := encodeTestImage(t, "jpeg", 300, 600)
		pngURI := alice.uploadMedia("image/png", "gradient.png", pngBytes)
		jpegURI := alice.uploadMedia("image/jpeg", "tall.jpg", jpegBytes)

		for _, tc := range []struct {
			uri     string
			content []byte
			ctype   string
		}{{pngURI, pngBytes, "image/png"}, {jpegURI, jpegBytes, "image/jpeg"}} {
			serverAndID := strings.TrimPrefix(tc.uri, "mxc://")
			// Authenticated, and the deprecated unauthenticated path.
			for _, c := range []*client{alice, srv.anonymous()} {
				path := "/_matrix/client/v1/media/download/" + serverAndID
				if c.token == "" {
					path = "/_matrix/media/v3/download/" + serverAndID
				}
				status, header, body := c.raw("GET", path)
				if status != http.StatusOK || !bytes.Equal(body, tc.content) || header.Get("Content-Type") != tc.ctype {
					t.Fatalf("GET %s: %d %s, %d bytes (identical: %v)", path, status, header.Get("Content-Type"), len(body), bytes.Equal(body, tc.content))
				}
			}
			sum := sha256.Sum256(tc.content)
			hexSum := hex.EncodeToString(sum[:])
			if _, err := os.Stat(filepath.Join(dataDir, "media", hexSum[:2], hexSum[2:4], hexSum)); err != nil {
				t.Fatalf("upload not stored by its SHA-256 under <data_dir>/media: %v", err)
			}
		}

		pngID := strings.TrimPrefix(pngURI, "mxc://")
		jpegID := strings.TrimPrefix(jpegURI, "mxc://")
		for _, tc := range []struct {
			id, query string
			w, h      int
		}{
			{pngID, "width=320&height=240&method=scale", 320, 240},
			{pngID, "width=100&height=100&method=scale", 100, 75},
			{pngID, "width=96&height=96&method=crop", 96, 96},
			{jpegID, "width=100&height=100&method=scale", 50, 100},
			{jpegID, "width=32&height=32&method=crop", 32, 32},
			{jpegID, "width=200&height=50&method=crop", 200, 50},
		} {
			path := "/_matrix/client/v1/media/thumbnail/" + tc.id + "?" + tc.query
			status, header, body := alice.raw("GET", path)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
			img, format, err := image.Decode(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("GET %s: thumbnail does not decode: %v", path, err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h || header.Get("Content-Type") != "image/"+format {
				t.Fatalf("GET %s: %dx%d %s served as %s, want %dx%d", path, b.Dx(), b.Dy(), format, header.Get("Content-Type"), tc.w, tc.h)
			}
		}

		// Uploads need a token; so do the authenticated downloads.
		if status, _, _ := srv.anonymous().raw("GET", "/_matrix/client/v1/media/download/"+pngID); status != http.StatusUnauthorized {
			t.Fatalf("authenticated download without a token: %d", status)
		}
	})
}

// encodeTestImage is an opaque w×h gradient as png or jpeg.
func encodeTestImage(t *testing.T, format string, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var b bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// uploadMedia posts content and returns its mxc:// URI.
func (c *client) uploadMedia(contentType, filename string, content []byte) string {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.base+"/_matrix/media/v3/upload?filename="+filename, bytes.NewReader(content))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || !strings.HasPrefix(out.ContentURI, "mxc://") {
		c.t.Fatalf("upload: %d %s", resp.StatusCode, raw)
	}
	return out.ContentURI
}

// raw sends a request without a body and returns the reply as it is.
func (c *client) raw(method, path string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}
