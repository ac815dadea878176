package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/federation"
)

func generateConfigCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	out := fs.String("o", "", "write the sample to this new `path` instead of stdout")
	return func(_ context.Context, e *env) error {
		if *out == "" {
			_, err := fmt.Fprint(e.stdout, config.SampleYAML())
			return err
		}
		if err := writeNewFile(*out, []byte(config.SampleYAML()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote %s\n", *out)
		return nil
	}
}

// writeNewFile creates path with data, refusing to replace an existing file.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; not replacing it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func generateKeysCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	cfgPath := fs.String("config", "", "the server's config `file` (default: built-in defaults and SOMA_* variables)")
	out := fs.String("o", "", "write the key to this `path` (default: the configured signing_key_path)")
	return func(_ context.Context, e *env) error {
		path := *out
		if path == "" {
			cfg, err := config.Load(*cfgPath)
			if err != nil {
				return err
			}
			path = cfg.SigningKeyPath
		}
		k, err := federation.GenerateSigningKey()
		if err != nil {
			return err
		}
		if err := federation.WriteSigningKey(path, k); err != nil {
			if errors.Is(err, federation.ErrKeyExists) {
				return fmt.Errorf("%s already exists; not replacing a signing key (remote servers cache it)", path)
			}
			return err
		}
		fmt.Fprintf(e.stdout, "wrote signing key %s to %s\n", k.KeyID, path)
		return nil
	}
}

const generateTLSSummary = `Usage: somactl generate-tls [-config soma.yaml] [-cert path] [-key path] [-hosts h1,h2] [-valid 8760h]

Writes a self-signed TLS certificate and key for the federation listener,
by default to the configured federation.tls_cert_path and tls_key_path, for
the host of server_name. For development and tests only: remote servers
accept it only with federation.skip_tls_verify. Existing files are never
replaced.`

func generateTLSCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	cfgPath := fs.String("config", "", "the server's config `file` (default: built-in defaults and SOMA_* variables)")
	certOut := fs.String("cert", "", "write the certificate to this `path` (default: federation.tls_cert_path)")
	keyOut := fs.String("key", "", "write the key to this `path` (default: federation.tls_key_path)")
	hosts := fs.String("hosts", "", "comma-separated host names and IP addresses the certificate is for (default: server_name's host)")
	valid := fs.Duration("valid", 365*24*time.Hour, "how long the certificate is valid")
	return func(_ context.Context, e *env) error {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		certPath, keyPath := cmp.Or(*certOut, cfg.Federation.TLSCertPath), cmp.Or(*keyOut, cfg.Federation.TLSKeyPath)
		names := strings.FieldsFunc(*hosts, func(r rune) bool { return r == ',' || r == ' ' })
		if len(names) == 0 {
			names = []string{serverNameHost(cfg.ServerName)}
		}
		if *valid <= 0 {
			return fmt.Errorf("-valid must be positive")
		}
		if err := federation.WriteSelfSignedTLS(certPath, keyPath, names, *valid); err != nil {
			if errors.Is(err, federation.ErrTLSExists) {
				return fmt.Errorf("%w; not replacing it", err)
			}
			return err
		}
		fmt.Fprintf(e.stdout, "wrote a self-signed certificate for %s to %s and its key to %s\n", strings.Join(names, ", "), certPath, keyPath)
		return nil
	}
}

// serverNameHost is the host of a server name, without port or IPv6
// brackets.
func serverNameHost(name string) string {
	if host, _, err := net.SplitHostPort(name); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
}

const oldKeyEntrySummary = `Usage: somactl old-key-entry [-config soma.yaml] [-key path]

Prints the federation.old_verify_keys entry of a signing key (by default
the configured signing_key_path), expired now: run it before replacing the
key, add the line to federation.old_verify_keys, then generate the new key.
Other servers then still verify what the old key signed.`

func oldKeyEntryCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	cfgPath := fs.String("config", "", "the server's config `file` (default: built-in defaults and SOMA_* variables)")
	keyPath := fs.String("key", "", "the signing key `file` (default: the configured signing_key_path)")
	return func(_ context.Context, e *env) error {
		path := *keyPath
		if path == "" {
			cfg, err := config.Load(*cfgPath)
			if err != nil {
				return err
			}
			path = cfg.SigningKeyPath
		}
		k, err := federation.LoadSigningKey(path)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s %s %d\n", k.KeyID, base64.RawStdEncoding.EncodeToString(k.Public()), time.Now().UnixMilli())
		return err
	}
}
