package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests that drive the server from JavaScript (matrix-js-sdk, the admin
// page in Chromium) keep their scripts and pinned npm dependencies under
// testdata/<name>; node_modules is installed on demand and never committed.

// requireTool finds a program on PATH; without it the test skips with one
// loud line saying why it is needed, or fails when CI is set.
func requireTool(t *testing.T, name, why string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := "SKIPPING: " + name + " is not installed; " + why
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// ensureNodeModules runs npm ci in dir when node_modules lacks the version
// of pkg that dir's package.json pins.
func ensureNodeModules(t *testing.T, dir, pkg string) {
	t.Helper()
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("%s/package.json: %v", dir, err)
	}
	want := manifest.Dependencies[pkg]
	var installed struct {
		Version string `json:"version"`
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json")); err == nil {
		_ = json.Unmarshal(raw, &installed)
	}
	if installed.Version != "" && installed.Version == want {
		return
	}
	npm := requireTool(t, "npm", "npm installs the test's JavaScript dependencies")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.New("timed out after 5m")
	}
	if err != nil {
		t.Fatalf("npm ci in %s (%s %s): %v\n%s", dir, pkg, want, err, out)
	}
	t.Logf("npm ci installed %s %s in %s", pkg, want, time.Since(start).Round(time.Second))
}

// runNodeScript runs script in dir with node, bounded by timeout; on
// failure the test fails with the script's output and the server's log.
// Lines the script prints starting with one of logPrefixes go to the test
// log.
func runNodeScript(t *testing.T, srv *server, dir string, timeout time.Duration, env []string, logPrefixes []string, script string, args ...string) {
	t.Helper()
	node := requireTool(t, "node", "Node 20+ with npm runs the JavaScript end-to-end tests")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.New("timed out after " + timeout.String())
	}
	if err != nil {
		t.Fatalf("node %s: %v (%v)\n%s\n--- soma log (last 60 lines):\n%s",
			script, err, time.Since(start).Round(time.Millisecond), out.String(), lastLines(srv.Logs(), 60))
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		for _, p := range logPrefixes {
			if strings.HasPrefix(line, p) {
				t.Log(line)
				break
			}
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
