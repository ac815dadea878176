package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

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
