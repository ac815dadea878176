package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// Media across servers: bob on B downloads alice's upload on A through
// B's authenticated media API; B fetches it over federation once and
// serves it from its cache afterwards, A up or not.
func TestFederationMediaDownload(t *testing.T) {
	t.Parallel() // servers of its own; mostly waiting on the network
	backends := backendsUnderTest()
	a := startFedServer(t, backends[0])
	b := startFedServer(t, backends[1])
	alice, bob := a.register("alice"), b.register("bob")
	png := encodeTestImage(t, "png", 64, 48)
	uri := alice.uploadMedia("image/png", "cat.png", png)
	mediaID, ok := strings.CutPrefix(uri, "mxc://"+string(a.name)+"/")
	if !ok {
		t.Fatalf("upload on A gave %q", uri)
	}
	download := "/_matrix/client/v1/media/download/" + string(a.name) + "/" + mediaID

	t.Run("the federation endpoint wants X-Matrix", func(t *testing.T) {
		code, body := fedGet(t, a.fedURL+"/_matrix/federation/v1/media/download/"+mediaID)
		if code != http.StatusUnauthorized || body["errcode"] != "M_UNAUTHORIZED" {
			t.Fatalf("without X-Matrix: %d %v", code, body)
		}
	})

	t.Run("the federation endpoint answers multipart/mixed", func(t *testing.T) {
		req := signedGet(t, a.fedURL, b.name, a.name, b.signingKey(t), "/_matrix/federation/v1/media/download/"+mediaID)
		resp, err := insecureClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != http.StatusOK || err != nil || mt != "multipart/mixed" {
			t.Fatalf("signed download: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(resp.Body, params["boundary"])
		meta, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.NewDecoder(meta).Decode(&m); err != nil || meta.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("metadata part: %v %v", meta.Header, err)
		}
		content, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(content)
		if content.Header.Get("Content-Type") != "image/png" || !bytes.Equal(got, png) {
			t.Fatalf("content part: %v, %d bytes", content.Header, len(got))
		}
		req = signedGet(t, a.fedURL, b.name, a.name, b.signingKey(t), "/_matrix/federation/v1/media/download/nosuchmedia")
		if code, body := fedDo(t, req); code != http.StatusNotFound || body["errcode"] != "M_NOT_FOUND" {
			t.Fatalf("unknown media: %d %v", code, body)
		}
	})

	t.Run("bob downloads it through B", func(t *testing.T) {
		for _, path := range []string{download, download + "/kitten.png"} {
			status, h, body := bob.raw("GET", path)
			if status != http.StatusOK || !bytes.Equal(body, png) || h.Get("Content-Type") != "image/png" {
				t.Fatalf("GET %s: %d %q, %d bytes", path, status, h.Get("Content-Type"), len(body))
			}
			name := "cat.png"
			if strings.HasSuffix(path, "kitten.png") {
				name = "kitten.png"
			}
			if _, p, _ := mime.ParseMediaType(h.Get("Content-Disposition")); p["filename"] != name {
				t.Fatalf("GET %s: Content-Disposition %q", path, h.Get("Content-Disposition"))
			}
		}
		status, _, body := bob.raw("GET", "/_matrix/client/v1/media/download/"+string(a.name)+"/nosuchmedia")
		if status != http.StatusNotFound || !strings.Contains(string(body), "M_NOT_FOUND") {
			t.Fatalf("unknown remote media: %d %s", status, body)
		}
		// A thumbnail of remote media is made by B from its copy.
		status, h, _ := bob.raw("GET", "/_matrix/client/v1/media/thumbnail/"+string(a.name)+"/"+mediaID+"?width=32&height=32&method=scale")
		if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "image/") {
			t.Fatalf("remote thumbnail: %d %q", status, h.Get("Content-Type"))
		}
	})

	t.Run("B serves its copy with A down", func(t *testing.T) {
		a.Stop()
		status, h, body := bob.raw("GET", download)
		if status != http.StatusOK || !bytes.Equal(body, png) || h.Get("Content-Type") != "image/png" {
			t.Fatalf("cached download: %d %q, %d bytes", status, h.Get("Content-Type"), len(body))
		}
		status, _, body = bob.raw("GET", "/_matrix/client/v1/media/download/"+string(a.name)+"/notcachedhere")
		if status != http.StatusBadGateway || !strings.Contains(string(body), "M_UNKNOWN") {
			t.Fatalf("media of an unreachable server: %d %s", status, body)
		}
		// The same media ID is not B's own.
		status, _, _ = bob.raw("GET", "/_matrix/client/v1/media/download/"+string(b.name)+"/"+mediaID)
		if status != http.StatusNotFound {
			t.Fatalf("A's media ID on B's name: %d", status)
		}
	})
}
