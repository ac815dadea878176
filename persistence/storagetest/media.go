package storagetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// The media repository's metadata: items keyed by server name and media
// ID, thumbnails keyed by their own size and method.

func testMedia(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	m := persistence.Media{
		ServerName: "x", MediaID: "AbC_-123", ContentType: "image/png", UploadName: "café.png",
		Size: 1234, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Uploader: "@alice:x", CreatedTS: 1700000000123,
	}
	_, err := s.GetMedia(ctx, "x", m.MediaID)
	wantErr(t, "GetMedia of nothing", err, persistence.ErrNotFound)
	noErr(t, "InsertMedia", s.InsertMedia(ctx, m))
	got, err := s.GetMedia(ctx, "x", m.MediaID)
	noErr(t, "GetMedia", err)
	if !reflect.DeepEqual(*got, m) {
		t.Fatalf("GetMedia = %+v, want %+v", *got, m)
	}

	// The ID is taken: the first row stays as it was.
	again := m
	again.ContentType, again.Size = "text/plain", 1
	wantErr(t, "InsertMedia of a taken ID", s.InsertMedia(ctx, again), persistence.ErrMediaExists)
	if got, _ := s.GetMedia(ctx, "x", m.MediaID); got == nil || got.ContentType != "image/png" {
		t.Fatalf("a refused insert changed the row: %+v", got)
	}

	// Another server's item may share the media ID, and two items may
	// share one file (the same content uploaded twice).
	remote := m
	remote.ServerName, remote.Uploader, remote.UploadName = "y", "", ""
	noErr(t, "InsertMedia of another server's item", s.InsertMedia(ctx, remote))
	twin := m
	twin.MediaID = "other"
	noErr(t, "InsertMedia of the same content", s.InsertMedia(ctx, twin))
	if got, err := s.GetMedia(ctx, "y", m.MediaID); err != nil || !reflect.DeepEqual(*got, remote) {
		t.Fatalf("GetMedia of the other server's item = %+v, %v", got, err)
	}
	_, err = s.GetMedia(ctx, "z", m.MediaID)
	wantErr(t, "GetMedia on an unknown server", err, persistence.ErrNotFound)
}

func testMediaThumbnails(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	noErr(t, "InsertMedia", s.InsertMedia(ctx, persistence.Media{
		ServerName: "x", MediaID: "m1", ContentType: "image/jpeg", Size: 10, SHA256: "aa", CreatedTS: 1,
	}))
	ths, err := s.Thumbnails(ctx, "x", "m1")
	noErr(t, "Thumbnails of none", err)
	if len(ths) != 0 {
		t.Fatalf("Thumbnails before any = %+v", ths)
	}
	th := func(w, h int, method, sha string) persistence.Thumbnail {
		return persistence.Thumbnail{ServerName: "x", MediaID: "m1", Width: w, Height: h, Method: method,
			ContentType: "image/jpeg", Size: int64(w * h), SHA256: sha, CreatedTS: 2}
	}
	crop := th(96, 96, "crop", "c1")
	scale := th(320, 240, "scale", "s1")
	small := th(32, 32, "crop", "c2")
	sameSize := th(96, 96, "scale", "s2")
	for _, x := range []persistence.Thumbnail{crop, scale, small, sameSize} {
		noErr(t, "InsertThumbnail", s.InsertThumbnail(ctx, x))
	}
	// A second thumbnail of the same size and method (a concurrent
	// generation) keeps the first.
	dup := crop
	dup.SHA256 = "c9"
	noErr(t, "InsertThumbnail of a stored size", s.InsertThumbnail(ctx, dup))

	ths, err = s.Thumbnails(ctx, "x", "m1")
	noErr(t, "Thumbnails", err)
	if want := []persistence.Thumbnail{small, crop, sameSize, scale}; !reflect.DeepEqual(ths, want) {
		t.Fatalf("Thumbnails = %+v, want %+v", ths, want)
	}
	if ths, err := s.Thumbnails(ctx, "y", "m1"); err != nil || len(ths) != 0 {
		t.Fatalf("Thumbnails of another server's item = %+v, %v", ths, err)
	}
	bad := crop
	bad.Width = 0
	if err := s.InsertThumbnail(ctx, bad); err == nil {
		t.Fatal("InsertThumbnail of a 0-wide thumbnail succeeded")
	}
}
