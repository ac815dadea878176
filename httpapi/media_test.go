package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/soma-chat/soma/persistence/mediafiles"
)

const (
	mediaV3 = "/_matrix/media/v3"
	mediaV1 = "/_matrix/client/v1/media"
)

// newMediaServer is a test server with a media repository in a temporary
// directory and the given upload limit.
func newMediaServer(t *testing.T, maxUpload int64) *testServer {
	t.Helper()
	files, err := mediafiles.Open(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, func(c *testServerConfig) {
		c.Options.Media = MediaOptions{Files: files, MaxUploadSize: maxUpload}
	})
}

// mediaResponse is a reply read whole.
type mediaResponse struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body of an error or JSON reply.
func (m mediaResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(m.body, &out); err != nil {
		t.Fatalf("status %d, body is not JSON: %q", m.status, m.body)
	}
	return out
}

func (m mediaResponse) wantError(t *testing.T, status int, code string) {
	t.Helper()
	wantError(t, m.status, m.json(t), status, code)
}

// mediaDo sends body (nil: none) with the content type and token given.
func (ts *testServer) mediaDo(t *testing.T, method, path, token, contentType string, body io.Reader) mediaResponse {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mediaResponse{resp.StatusCode, resp.Header, raw}
}

var mxcPattern = regexp.MustCompile(`^mxc://test\.local/([A-Za-z0-9_-]{22,})$`)

// upload stores content and returns its media ID.
func (ts *testServer) upload(t *testing.T, token, contentType, filename string, content []byte) string {
	t.Helper()
	path := mediaV3 + "/upload"
	if filename != "" {
		path += "?filename=" + urlQueryEscape(filename)
	}
	res := ts.mediaDo(t, "POST", path, token, contentType, bytes.NewReader(content))
	if res.status != http.StatusOK {
		t.Fatalf("upload: %d %s", res.status, res.body)
	}
	uri, _ := res.json(t)["content_uri"].(string)
	m := mxcPattern.FindStringSubmatch(uri)
	if m == nil {
		t.Fatalf("content_uri %q is not an mxc URI of this server with a random ID", uri)
	}
	return m[1]
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "?", "%3F", "#", "%23", "+", "%2B").Replace(s)
}

func TestMediaUploadDownloadsByteIdenticalWithSafeHeaders(t *testing.T) {
	ts := newMediaServer(t, 1<<20)
	alice := ts.register(t, "alice")
	content := []byte("\x89PNG not really, but the server does not look")
	id := ts.upload(t, alice.Token, "image/png", "cat photo.png", content)

	for _, tc := range []struct {
		name, path, token, disposition string
	}{
		{"legacy", mediaV3 + "/download/test.local/" + id, "", `inline; filename="cat photo.png"`},
		{"legacy r0", "/_matrix/media/r0/download/test.local/" + id, "", `inline; filename="cat photo.png"`},
		{"authenticated", mediaV1 + "/download/test.local/" + id, alice.Token, `inline; filename="cat photo.png"`},
		{"file name from the path", mediaV1 + "/download/test.local/" + id + "/other.png", alice.Token, `inline; filename=other.png`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.mediaDo(t, "GET", tc.path, tc.token, "", nil)
			if res.status != http.StatusOK || !bytes.Equal(res.body, content) {
				t.Fatalf("download: %d %q", res.status, res.body)
			}
			h := res.header
			if h.Get("Content-Type") != "image/png" || h.Get("Content-Disposition") != tc.disposition {
				t.Fatalf("Content-Type %q, Content-Disposition %q; want image/png, %q", h.Get("Content-Type"), h.Get("Content-Disposition"), tc.disposition)
			}
			if h.Get("Content-Security-Policy") != mediaCSP || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Cross-Origin-Resource-Policy") != "cross-origin" || !strings.Contains(h.Get("Cache-Control"), "immutable") {
				t.Fatalf("headers %v lack the sandbox, nosniff, CORP or immutable caching", h)
			}
		})
	}

	// Types that could script a page are attachments; names outside
	// ASCII are encoded.
	html := ts.upload(t, alice.Token, "text/html", "päge.html", []byte("<script>alert(1)</script>"))
	res := ts.mediaDo(t, "GET", mediaV3+"/download/test.local/"+html, "", "", nil)
	if d := res.header.Get("Content-Disposition"); res.status != http.StatusOK || d != `attachment; filename*=utf-8''p%C3%A4ge.html` {
		t.Fatalf("HTML download: %d, Content-Disposition %q", res.status, d)
	}
	// Without a file name and a type, there is none in the reply.
	bare := ts.upload(t, alice.Token, "", "", []byte{1, 2, 3})
	res = ts.mediaDo(t, "GET", mediaV3+"/download/test.local/"+bare, "", "", nil)
	if res.header.Get("Content-Type") != "application/octet-stream" || res.header.Get("Content-Disposition") != "attachment" {
		t.Fatalf("bare download headers: %v", res.header)
	}
	// The content never changes: a client holding it gets 304.
	first := ts.mediaDo(t, "GET", mediaV3+"/download/test.local/"+id, "", "", nil)
	req, _ := http.NewRequest("GET", ts.URL+mediaV3+"/download/test.local/"+id, nil)
	req.Header.Set("If-None-Match", first.header.Get("ETag"))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional download: %d, want 304", resp.StatusCode)
	}
}

func TestMediaNeedsTokensWhereTheSpecSaysSo(t *testing.T) {
	ts := newMediaServer(t, 1<<20)
	alice := ts.register(t, "alice")
	id := ts.upload(t, alice.Token, "text/plain", "", []byte("hi"))

	ts.mediaDo(t, "POST", mediaV3+"/upload", "", "text/plain", strings.NewReader("x")).wantError(t, http.StatusUnauthorized, "M_MISSING_TOKEN")
	ts.mediaDo(t, "POST", mediaV3+"/upload", "nope", "text/plain", strings.NewReader("x")).wantError(t, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	for _, p := range []string{
		mediaV1 + "/config",
		mediaV1 + "/download/test.local/" + id,
		mediaV1 + "/download/test.local/" + id + "/a.txt",
		mediaV1 + "/thumbnail/test.local/" + id + "?width=32&height=32",
		mediaV3 + "/config",
	} {
		ts.mediaDo(t, "GET", p, "", "", nil).wantError(t, http.StatusUnauthorized, "M_MISSING_TOKEN")
	}
	for _, p := range []string{mediaV3 + "/config", mediaV1 + "/config"} {
		res := ts.mediaDo(t, "GET", p, alice.Token, "", nil)
		if res.status != http.StatusOK || res.json(t)["m.upload.size"] != float64(1<<20) {
			t.Fatalf("GET %s: %d %s", p, res.status, res.body)
		}
	}
}

// chunked hides its length, so that the request is sent chunked.
type chunked struct{ io.Reader }

func TestMediaUploadOverTheLimitIsTooLarge(t *testing.T) {
	ts := newMediaServer(t, 1000)
	alice := ts.register(t, "alice")
	ts.upload(t, alice.Token, "application/octet-stream", "", bytes.Repeat([]byte{'a'}, 1000))

	over := bytes.Repeat([]byte{'b'}, 1001)
	// Refused from its Content-Length, and while streaming when the
	// length is not announced.
	ts.mediaDo(t, "POST", mediaV3+"/upload", alice.Token, "", bytes.NewReader(over)).wantError(t, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	ts.mediaDo(t, "POST", mediaV3+"/upload", alice.Token, "", chunked{bytes.NewReader(over)}).wantError(t, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	if res := ts.mediaDo(t, "POST", mediaV3+"/upload", alice.Token, "", chunked{bytes.NewReader(over[:999])}); res.status != http.StatusOK {
		t.Fatalf("chunked upload within the limit: %d %s", res.status, res.body)
	}
	if n := countMediaFiles(t, ts); n != 2 {
		t.Fatalf("%d files stored, want only the two within the limit", n)
	}
}

func TestMediaRefusesBadIDsAndRemoteMedia(t *testing.T) {
	ts := newMediaServer(t, 1<<20)
	alice := ts.register(t, "alice")
	ts.upload(t, alice.Token, "text/plain", "", []byte("hi"))
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/download/test.local/not.an.id", http.StatusBadRequest, "M_INVALID_PARAM"},
		{"/download/test.local/..%2F..%2Fetc%2Fpasswd", http.StatusBadRequest, "M_INVALID_PARAM"},
		{"/download/bad_server!/abc", http.StatusBadRequest, "M_INVALID_PARAM"},
		{"/download/test.local/unknownMediaID", http.StatusNotFound, "M_NOT_FOUND"},
		{"/download/remote.example/abc", http.StatusNotFound, "M_NOT_FOUND"},
		{"/thumbnail/test.local/unknownMediaID?width=32&height=32", http.StatusNotFound, "M_NOT_FOUND"},
		{"/thumbnail/test.local/not.an.id?width=32&height=32", http.StatusBadRequest, "M_INVALID_PARAM"},
	} {
		ts.mediaDo(t, "GET", mediaV3+tc.path, "", "", nil).wantError(t, tc.status, tc.code)
		ts.mediaDo(t, "GET", mediaV1+tc.path, alice.Token, "", nil).wantError(t, tc.status, tc.code)
	}
	res := ts.mediaDo(t, "GET", mediaV1+"/download/remote.example/abc", alice.Token, "", nil)
	if msg, _ := res.json(t)["error"].(string); !strings.Contains(msg, "Remote media") {
		t.Fatalf("remote media error %q does not say why", msg)
	}
	res = ts.mediaDo(t, "POST", mediaV3+"/upload?filename=a%00b", alice.Token, "text/plain", strings.NewReader("x"))
	res.wantError(t, http.StatusBadRequest, "M_INVALID_PARAM")
}

func TestMediaSameContentIsStoredOnce(t *testing.T) {
	ts := newMediaServer(t, 1<<20)
	alice := ts.register(t, "alice")
	bob := ts.register(t, "bob")
	content := []byte("the same bytes")
	a := ts.upload(t, alice.Token, "text/plain", "a.txt", content)
	b := ts.upload(t, bob.Token, "application/octet-stream", "b.bin", content)
	if a == b {
		t.Fatal("two uploads got one media ID")
	}
	if n := countMediaFiles(t, ts); n != 1 {
		t.Fatalf("%d files stored for one content, want 1", n)
	}
	// Each keeps its own metadata.
	res := ts.mediaDo(t, "GET", mediaV3+"/download/test.local/"+b, "", "", nil)
	if res.header.Get("Content-Type") != "application/octet-stream" || res.header.Get("Content-Disposition") != `attachment; filename=b.bin` {
		t.Fatalf("second upload's headers: %v", res.header)
	}
	ma, err := ts.Store.GetMedia(context.Background(), "test.local", a)
	if err != nil || ma.Uploader != alice.UserID || ma.Size != int64(len(content)) {
		t.Fatalf("stored media = %+v, %v", ma, err)
	}
}

// countMediaFiles counts the stored files, temporary ones excluded.
func countMediaFiles(t *testing.T, ts *testServer) int {
	t.Helper()
	root := ts.API.opts.Media.Files.Root()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testImage is a w×h gradient; opaque unless alpha.
func testImage(w, h int, alpha bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if alpha && x < w/2 {
				a = 100
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 128, a})
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// thumbnail fetches a thumbnail and decodes it.
func (ts *testServer) thumbnail(t *testing.T, token, id, query string) (image.Image, string, []byte) {
	t.Helper()
	res := ts.mediaDo(t, "GET", mediaV1+"/thumbnail/test.local/"+id+"?"+query, token, "", nil)
	if res.status != http.StatusOK {
		t.Fatalf("thumbnail %s: %d %s", query, res.status, res.body)
	}
	if d := res.header.Get("Content-Disposition"); !strings.HasPrefix(d, "inline; filename=thumbnail.") {
		t.Fatalf("thumbnail Content-Disposition %q", d)
	}
	img, format, err := image.Decode(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("thumbnail %s does not decode: %v", query, err)
	}
	if want := "image/" + format; res.header.Get("Content-Type") != want {
		t.Fatalf("thumbnail is %s served as %s", format, res.header.Get("Content-Type"))
	}
	return img, format, res.body
}

func TestThumbnailsScaleCropAndNeverUpscale(t *testing.T) {
	ts := newMediaServer(t, 10<<20)
	alice := ts.register(t, "alice")
	opaque := encodePNG(t, testImage(400, 300, false))
	id := ts.upload(t, alice.Token, "image/png", "photo.png", opaque)

	for _, tc := range []struct {
		query  string
		w, h   int
		format string
	}{
		{"width=100&height=100&method=scale", 100, 75, "jpeg"},
		{"width=100&height=100", 100, 75, "jpeg"}, // scale is the default
		{"width=320&height=100&method=scale", 133, 100, "jpeg"},
		{"width=96&height=96&method=crop", 96, 96, "jpeg"},
		{"width=200&height=50&method=crop", 200, 50, "jpeg"},
		// A crop box larger than the image shrinks to fit it, keeping its
		// aspect ratio.
		{"width=800&height=200&method=crop", 400, 100, "jpeg"},
		// The image fits the box: the original is the answer.
		{"width=400&height=300&method=scale", 400, 300, "png"},
		{"width=1000&height=1000&method=crop", 400, 300, "png"},
	} {
		img, format, _ := ts.thumbnail(t, alice.Token, id, tc.query)
		if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h || format != tc.format {
			t.Errorf("%s: %dx%d %s, want %dx%d %s", tc.query, b.Dx(), b.Dy(), format, tc.w, tc.h, tc.format)
		}
	}
	// Legacy path, no token; a second request is served from the cache.
	res := ts.mediaDo(t, "GET", mediaV3+"/thumbnail/test.local/"+id+"?width=96&height=96&method=crop", "", "", nil)
	_, _, again := ts.thumbnail(t, alice.Token, id, "width=96&height=96&method=crop")
	if res.status != http.StatusOK || !bytes.Equal(res.body, again) {
		t.Fatalf("legacy thumbnail: %d, same bytes: %v", res.status, bytes.Equal(res.body, again))
	}
	cached, err := ts.Store.Thumbnails(context.Background(), "test.local", id)
	if err != nil || len(cached) != 5 {
		t.Fatalf("cached thumbnails = %+v, %v; want the 5 generated sizes", cached, err)
	}

	// An image with transparency gets a PNG thumbnail; a GIF its first
	// frame.
	clear := ts.upload(t, alice.Token, "image/png", "", encodePNG(t, testImage(300, 300, true)))
	if img, format, _ := ts.thumbnail(t, alice.Token, clear, "width=32&height=32&method=crop"); format != "png" || img.Bounds().Dx() != 32 {
		t.Fatalf("transparent thumbnail: %s %v", format, img.Bounds())
	}
	var g bytes.Buffer
	pal := image.NewPaletted(image.Rect(0, 0, 200, 100), []color.Color{color.Black, color.White})
	if err := gif.EncodeAll(&g, &gif.GIF{Image: []*image.Paletted{pal, pal}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	anim := ts.upload(t, alice.Token, "image/gif", "", g.Bytes())
	if img, _, _ := ts.thumbnail(t, alice.Token, anim, "width=50&height=50&method=scale"); img.Bounds().Dx() != 50 || img.Bounds().Dy() != 25 {
		t.Fatalf("gif thumbnail: %v", img.Bounds())
	}
}

func TestThumbnailsRefuseWhatCannotBeThumbnailed(t *testing.T) {
	ts := newMediaServer(t, 10<<20)
	alice := ts.register(t, "alice")
	text := ts.upload(t, alice.Token, "text/plain", "", []byte("not an image"))
	liar := ts.upload(t, alice.Token, "image/png", "", []byte("not a png either"))
	bomb := ts.upload(t, alice.Token, "image/png", "", pngClaimingSize(t, 10000, 10000))
	img := ts.upload(t, alice.Token, "image/png", "", encodePNG(t, testImage(64, 64, false)))
	for _, tc := range []struct {
		id, query string
		status    int
		code      string
	}{
		{text, "width=32&height=32", http.StatusBadRequest, "M_UNKNOWN"},
		{liar, "width=32&height=32", http.StatusBadRequest, "M_UNKNOWN"},
		{bomb, "width=32&height=32", http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
		{img, "height=32", http.StatusBadRequest, "M_MISSING_PARAM"},
		{img, "width=32", http.StatusBadRequest, "M_MISSING_PARAM"},
		{img, "width=-1&height=32", http.StatusBadRequest, "M_INVALID_PARAM"},
		{img, "width=1.5&height=32", http.StatusBadRequest, "M_INVALID_PARAM"},
		{img, "width=32&height=32&method=zoom", http.StatusBadRequest, "M_INVALID_PARAM"},
	} {
		ts.mediaDo(t, "GET", mediaV1+"/thumbnail/test.local/"+tc.id+"?"+tc.query, alice.Token, "", nil).wantError(t, tc.status, tc.code)
	}
}

// pngClaimingSize is a 1×1 PNG whose header claims w×h: what a
// decompression bomb looks like before it is decoded.
func pngClaimingSize(t *testing.T, w, h uint32) []byte {
	b := encodePNG(t, testImage(1, 1, false))
	// Signature (8), IHDR length (4), "IHDR" (4), width, height, ...; the
	// CRC covers the type and the 13 bytes of data.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}
