package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/federation"
)

// runCmd runs somactl with args and stdin, returning its exit status and
// output.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{nil, 2, "Commands:"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"-h"}, 0, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help", "create-account"}, 0, "-username"},
		{[]string{"create-account", "-h"}, 0, "-username"},
		{[]string{"generate-config", "-nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"generate-config", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"create-account"}, 2, "-username is required"},
	} {
		code, out, errOut := runCmd(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.contains) {
			t.Errorf("somactl %q: exit %d, output %q; want exit %d and %q", tc.args, code, out+errOut, tc.code, tc.contains)
		}
	}
}

func TestGenerateConfigOutputLoads(t *testing.T) {
	code, out, errOut := runCmd(t, "", "generate-config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "soma.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
}

func TestGenerateConfigToFileRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soma.yaml")
	if code, _, errOut := runCmd(t, "", "generate-config", "-o", path); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if data, _ := os.ReadFile(path); string(data) != config.SampleYAML() {
		t.Fatal("file does not hold the sample")
	}
	code, _, errOut := runCmd(t, "", "generate-config", "-o", path)
	if code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second write: exit %d, %q", code, errOut)
	}
}

func TestGenerateKeys(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "soma.yaml")
	os.WriteFile(cfgPath, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600)

	code, out, errOut := runCmd(t, "", "generate-keys", "-config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	keyPath := filepath.Join(dir, "data", "signing.key")
	k, err := federation.LoadSigningKey(keyPath)
	if err != nil {
		t.Fatalf("no key at the configured path: %v", err)
	}
	if !strings.Contains(out, string(k.KeyID)) || !strings.Contains(out, keyPath) {
		t.Fatalf("output %q names neither key ID %s nor path", out, k.KeyID)
	}

	code, _, errOut = runCmd(t, "", "generate-keys", "-config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second run: exit %d, %q", code, errOut)
	}
	if k2, _ := federation.LoadSigningKey(keyPath); k2.KeyID != k.KeyID {
		t.Fatal("the key was replaced")
	}

	other := filepath.Join(dir, "other.key")
	if code, _, errOut := runCmd(t, "", "generate-keys", "-o", other); code != 0 {
		t.Fatalf("-o: exit %d: %s", code, errOut)
	}
	if _, err := federation.LoadSigningKey(other); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigIsReported(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "soma.yaml")
	os.WriteFile(cfgPath, []byte("database:\n  backend: mysql\n"), 0o600)
	code, _, errOut := runCmd(t, "", "generate-keys", "-config", cfgPath)
	if code != 1 || !strings.Contains(errOut, `database.backend: must be "sqlite" or "postgres", got "mysql"`) {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestLocalpartOf(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"alice", "alice", ""},
		{"Alice", "alice", ""},
		{"@bob:example.org", "bob", ""},
		{"@bob:elsewhere.org", "", "not a user ID of this server"},
		{"@bob", "", "not a user ID of this server"},
		{"al ice", "", "invalid localpart"},
	} {
		got, err := localpartOf(tc.in, "example.org")
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("localpartOf(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("localpartOf(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
}
