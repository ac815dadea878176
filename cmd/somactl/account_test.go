package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soma-chat/soma/accounts"
	"github.com/soma-chat/soma/config"
)

// sqliteConfig writes a config whose SQLite database lives in a temp dir.
func sqliteConfig(t *testing.T) (path string, cfg *config.Config) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "soma.yaml")
	content := "server_name: example.org\ndata_dir: " + filepath.Join(dir, "data") + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

func TestCreateAccount(t *testing.T) {
	cfgPath, cfg := sqliteConfig(t)

	code, out, errOut := runCmd(t, "s3cret pass\n", "create-account", "-config", cfgPath, "-username", "Alice", "-admin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.TrimSpace(out) != "@alice:example.org" {
		t.Fatalf("printed %q, want the user ID", out)
	}
	code, _, errOut = runCmd(t, "", "create-account", "-config", cfgPath, "-username", "bob", "-password", "hunter2")
	if code != 0 {
		t.Fatalf("bob: exit %d: %s", code, errOut)
	}

	ctx := context.Background()
	store, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, tc := range []struct {
		localpart, password string
		admin               bool
	}{{"alice", "s3cret pass", true}, {"bob", "hunter2", false}} {
		acc, err := store.GetAccount(ctx, tc.localpart)
		if err != nil {
			t.Fatalf("GetAccount(%s): %v", tc.localpart, err)
		}
		if !accounts.CheckPassword(acc.PasswordHash, tc.password) || accounts.CheckPassword(acc.PasswordHash, tc.password+"x") {
			t.Errorf("%s: stored hash does not check the password", tc.localpart)
		}
		if acc.IsAdmin != tc.admin || acc.Deactivated || acc.CreatedTS == 0 {
			t.Errorf("%s: account %+v", tc.localpart, acc)
		}
		if p, err := store.GetProfile(ctx, tc.localpart); err != nil || p.DisplayName != tc.localpart {
			t.Errorf("%s: profile %+v, %v", tc.localpart, p, err)
		}
	}
}

func TestCreateAccountRefusesDuplicate(t *testing.T) {
	cfgPath, _ := sqliteConfig(t)
	if code, _, errOut := runCmd(t, "pw\n", "create-account", "-config", cfgPath, "-username", "carol"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, _, errOut := runCmd(t, "other\n", "create-account", "-config", cfgPath, "-username", "carol")
	if code != 1 || !strings.Contains(errOut, "user @carol:example.org already exists") {
		t.Fatalf("duplicate: exit %d, %q", code, errOut)
	}
}

func TestCreateAccountRejectsBadInput(t *testing.T) {
	cfgPath, _ := sqliteConfig(t)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"pw\n", []string{"-username", "al ice"}, `invalid localpart "al ice"`},
		{"", []string{"-username", "dave"}, "no password on stdin"},
		{"\n", []string{"-username", "dave"}, "password must not be empty"},
		{"", []string{"-username", "dave", "-password", ""}, "password must not be empty"},
	} {
		code, _, errOut := runCmd(t, tc.stdin, append([]string{"create-account", "-config", cfgPath}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}
