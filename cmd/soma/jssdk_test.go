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

// jssdkDir holds the matrix-js-sdk client flow (flow.mjs) and its pinned
// dependencies (package.json, package-lock.json); node_modules is installed
// on demand and never committed.
const jssdkDir = "testdata/jssdk"

// TestMatrixJSSDK lets a real client SDK — matrix-js-sdk under Node — drive
// the server as a new user's client would: register, sync (filter upload,
// initial sync, long-polling), create a room, invite, join, chat both ways,
// topic and display name, history through /messages, leave. The steps and
// their checks are in testdata/jssdk/flow.mjs.
func TestMatrixJSSDK(t *testing.T) {
	node := requireTool(t, "node")
	ensureJSSDKModules(t)
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "flow.mjs", srv.baseURL)
		cmd.Dir = jssdkDir
		cmd.WaitDelay = 5 * time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		if ctx.Err() != nil {
			err = errors.New("timed out after 2m")
		}
		if err != nil {
			t.Fatalf("node flow.mjs %s: %v (%v)\n%s\n--- soma log (last 60 lines):\n%s",
				srv.baseURL, err, time.Since(start).Round(time.Millisecond), out.String(), lastLines(srv.Logs(), 60))
		}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if strings.HasPrefix(line, "jssdk:") || strings.HasPrefix(line, "note:") {
				t.Log(line)
			}
		}
	})
}

// requireTool finds a program on PATH; without it the test skips with one
// loud line, or fails when CI is set.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := "SKIPPING the matrix-js-sdk end-to-end test: " + name + " is not installed (Node 20+ with npm runs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// ensureJSSDKModules runs npm ci when node_modules lacks the matrix-js-sdk
// version package.json pins.
func ensureJSSDKModules(t *testing.T) {
	t.Helper()
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(jssdkDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("%s/package.json: %v", jssdkDir, err)
	}
	want := pkg.Dependencies["matrix-js-sdk"]
	var installed struct {
		Version string `json:"version"`
	}
	if raw, err := os.ReadFile(filepath.Join(jssdkDir, "node_modules", "matrix-js-sdk", "package.json")); err == nil {
		_ = json.Unmarshal(raw, &installed)
	}
	if installed.Version != "" && installed.Version == want {
		return
	}
	npm := requireTool(t, "npm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = jssdkDir
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.New("timed out after 5m")
	}
	if err != nil {
		t.Fatalf("npm ci in %s (matrix-js-sdk %s): %v\n%s", jssdkDir, want, err, out)
	}
	t.Logf("npm ci installed matrix-js-sdk %s in %s", want, time.Since(start).Round(time.Second))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
