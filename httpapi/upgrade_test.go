package httpapi

import (
	"errors"
	"net/http"
	"testing"
)

func TestOneUpgradeOfARoomAtATime(t *testing.T) {
	var s Server
	release, err := s.beginUpgrade("!a:test")
	if err != nil {
		t.Fatal(err)
	}
	var me *MatrixError
	if _, err := s.beginUpgrade("!a:test"); !errors.As(err, &me) || me.Status != http.StatusBadRequest {
		t.Fatalf("a second upgrade of the same room: %v, want a 400", err)
	}
	other, err := s.beginUpgrade("!b:test")
	if err != nil {
		t.Fatalf("another room's upgrade was refused: %v", err)
	}
	other()
	release()
	again, err := s.beginUpgrade("!a:test")
	if err != nil {
		t.Fatalf("an upgrade after the first ended was refused: %v", err)
	}
	again()
}
