// Package somaproc runs the soma binary for end-to-end tests: it builds it,
// starts it on a free loopback port, waits until it is ready, and stops it
// (SIGTERM) or kills it (SIGKILL).
package somaproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles github.com/soma-chat/soma/cmd/soma (and, when asked, other
// commands of the module) into dir; race builds with the race detector.
// It returns the path of the soma binary.
func Build(dir string, race bool, extra ...string) (string, error) {
	for _, name := range append([]string{"soma"}, extra...) {
		args := []string{"build", "-o", filepath.Join(dir, name)}
		if race {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, "github.com/soma-chat/soma/cmd/"+name)...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return "", fmt.Errorf("building %s: %w", name, err)
		}
	}
	return filepath.Join(dir, "soma"), nil
}

// Server is a running soma process.
type Server struct {
	BaseURL string
	// MetricsURL is the /metrics endpoint ("" when metrics are off).
	MetricsURL string
	// FederationURL is the federation listener's https:// base URL (""
	// when federation is off).
	FederationURL string
	// Env is the environment it runs with (what a CLI needs to open its
	// database).
	Env []string

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{}

	mu   sync.Mutex
	logs bytes.Buffer
}

// Start runs binary with env (SOMA_* variables) added to the test's own,
// listening on free loopback ports (client API and metrics), and waits
// until it logs that it is ready. It is stopped when the test ends.
func Start(t testing.TB, binary string, env ...string) *Server {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append(append(os.Environ(), "SOMA_CLIENT_API_LISTEN=127.0.0.1:0", "SOMA_METRICS_LISTEN=127.0.0.1:0", "SOMA_LOG_LEVEL=info"), env...)
	// Not StderrPipe: Wait closes that pipe as soon as the process exits,
	// dropping whatever the scanner has not read yet. With a writer, Wait
	// returns only once exec has copied all of stderr into it, so the log
	// is complete when Stop or Kill returns.
	stderr, stderrW := io.Pipe()
	cmd.Stderr = stderrW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Env: cmd.Env, t: t, cmd: cmd, exited: make(chan struct{})}
	type readyLine struct {
		Message       string `json:"message"`
		Listen        string `json:"listen"`
		MetricsListen string `json:"metrics_listen"`
		FedListen     string `json:"federation_listen"`
	}
	ready := make(chan readyLine, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			var l readyLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "soma is ready" {
				select {
				case ready <- l:
				default: // logged twice: nobody waits any more, keep reading
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // a line too long: never block the process
	}()
	go func() {
		_ = cmd.Wait()
		_ = stderrW.Close()
		<-scanned
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("soma's log:\n%s", s.Logs())
		}
	})
	select {
	case l := <-ready:
		s.BaseURL = "http://" + l.Listen
		if l.MetricsListen != "" {
			s.MetricsURL = "http://" + l.MetricsListen + "/metrics"
		}
		if l.FedListen != "" {
			s.FederationURL = "https://" + l.FedListen
		}
	case <-s.exited:
		t.Fatalf("soma exited during start-up:\n%s", s.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("soma did not become ready:\n%s", s.Logs())
	}
	return s
}

// Logs returns what the server has logged so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Kill ends the process with SIGKILL: no shutdown code runs.
func (s *Server) Kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// Stop ends the process with SIGTERM and waits for a clean exit.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.t.Errorf("soma did not stop within 20s of SIGTERM")
		s.Kill()
	}
}
