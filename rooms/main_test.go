package rooms_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"testing"

	"github.com/soma-chat/soma/persistence/pgtest"
	"github.com/soma-chat/soma/rooms"
)

func pgtestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func testSigner(t testing.TB) *rooms.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &rooms.Signer{ServerName: "test.local", KeyID: "ed25519:test", Key: priv}
}
