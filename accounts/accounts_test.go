package accounts

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswordHashChecks(t *testing.T) {
	for _, p := range []string{
		"correct horse battery staple",
		"",
		"ünïcödé pässwörd",
		strings.Repeat("x", 72),
		strings.Repeat("x", 73),
		strings.Repeat("y", 512),
	} {
		// The minimum cost keeps the test fast (bcrypt at cost 12 takes
		// seconds under the race detector); the input handling is the same.
		h, err := hashPassword(p, bcrypt.MinCost)
		if err != nil {
			t.Fatalf("hashPassword(len %d): %v", len(p), err)
		}
		if !CheckPassword(h, p) {
			t.Fatalf("password of length %d does not check against its hash", len(p))
		}
		if CheckPassword(h, p+"!") {
			t.Fatalf("password of length %d + \"!\" checks", len(p))
		}
	}
}

func TestHashesUseTheConfiguredCost(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2a$12$") {
		t.Fatalf("hash %q is not bcrypt at cost 12", h)
	}
}

// TestLongPasswordsUseEveryByte: bcrypt alone would ignore bytes past 72.
func TestLongPasswordsUseEveryByte(t *testing.T) {
	long := strings.Repeat("a", 100)
	h, err := hashPassword(long, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if CheckPassword(h, long[:99]+"b") {
		t.Fatal("a change past byte 72 still checks")
	}
	if CheckPassword(h, long[:72]) {
		t.Fatal("the first 72 bytes alone check")
	}
}

func TestCheckPasswordRejectsGarbageHash(t *testing.T) {
	if CheckPassword("", "") || CheckPassword("not a hash", "x") {
		t.Fatal("garbage hash checks")
	}
}

func TestValidateLocalpart(t *testing.T) {
	for _, tc := range []struct {
		localpart, server string
		want              string // "" means valid
	}{
		{"alice", "example.org", ""},
		{"a.b_c=d-e/f+g", "example.org", ""},
		{"0123456789", "example.org", ""},
		{"", "example.org", "must not be empty"},
		{"Alice", "example.org", `'A' is not allowed`},
		{"al ice", "example.org", `' ' is not allowed`},
		{"alice:example.org", "example.org", `':' is not allowed`},
		{"@alice", "example.org", `'@' is not allowed`},
		{"élise", "example.org", `'é' is not allowed`},
		{strings.Repeat("a", 255-len("@:example.org")), "example.org", ""},
		{strings.Repeat("a", 256-len("@:example.org")), "example.org", "would be 256 bytes, more than 255"},
	} {
		err := ValidateLocalpart(tc.localpart, tc.server)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateLocalpart(%q): %v", tc.localpart, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ValidateLocalpart(%q) = %v, want it to contain %q", tc.localpart, err, tc.want)
		case tc.want != "" && !errors.Is(err, ErrInvalidLocalpart):
			t.Errorf("ValidateLocalpart(%q) = %v, not ErrInvalidLocalpart", tc.localpart, err)
		}
	}
}
