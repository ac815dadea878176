package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// tokenFile is the -token-file format: the accounts of earlier runs, so
// that a run can skip registration (bcrypt makes it the slow part) or use
// accounts made by other means on servers without m.login.dummy.
type tokenFile struct {
	BaseURL string `json:"base_url"`
	Users   []user `json:"users"`
}

// users returns n accounts: from -token-file when it lists them, the rest
// registered (conc at a time) under this run's prefix.
func (e *runEnv) users(ctx context.Context, n, conc int) ([]user, error) {
	var have []user
	if e.opts.tokenFile != "" {
		tf, err := readTokenFile(e.opts.tokenFile)
		if err != nil {
			return nil, err
		}
		if tf.BaseURL != "" && tf.BaseURL != e.opts.url {
			return nil, fmt.Errorf("%s holds accounts of %s, not of %s", e.opts.tokenFile, tf.BaseURL, e.opts.url)
		}
		have = tf.Users[:min(n, len(tf.Users))]
		if err := forEach(ctx, len(have), conc, func(ctx context.Context, i int) error {
			return e.c.whoami(ctx, have[i])
		}); err != nil {
			return nil, fmt.Errorf("%s: %w", e.opts.tokenFile, err)
		}
		if len(have) > 0 {
			e.logf("reusing %d accounts from %s", len(have), e.opts.tokenFile)
		}
		if len(have) == n {
			return have, nil
		}
	}

	// From here on the file, if any, lists fewer than n accounts: all of
	// them are in have.
	fresh, err := e.register(ctx, e.c, n-len(have), conc)
	if err != nil {
		return nil, err
	}
	all := append(have, fresh...)
	if e.opts.tokenFile != "" {
		if err := writeTokenFile(e.opts.tokenFile, tokenFile{BaseURL: e.opts.url, Users: all}); err != nil {
			return nil, err
		}
		e.logf("wrote %d accounts to %s", len(all), e.opts.tokenFile)
	}
	return all, nil
}

func readTokenFile(path string) (tokenFile, error) {
	var tf tokenFile
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tf, nil
	}
	if err != nil {
		return tf, err
	}
	if err := json.Unmarshal(raw, &tf); err != nil {
		return tf, fmt.Errorf("%s: %v", path, err)
	}
	for i, u := range tf.Users {
		if u.UserID == "" || u.AccessToken == "" {
			return tf, fmt.Errorf("%s: users[%d] lacks user_id or access_token", path, i)
		}
	}
	return tf, nil
}

// writeTokenFile replaces the file atomically; it holds access tokens, so
// only its owner may read it.
func writeTokenFile(path string, tf tokenFile) error {
	raw, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// register registers n accounts under this run's prefix on the server c
// speaks to, conc at a time.
func (e *runEnv) register(ctx context.Context, c *client, n, conc int) ([]user, error) {
	start := time.Now()
	fresh := make([]user, n)
	e.logf("registering %d accounts on %s (%d at a time)", n, c.base, conc)
	err := forEach(ctx, n, conc, func(ctx context.Context, i int) error {
		u, err := c.register(ctx, fmt.Sprintf("somaload-%s-%05d", e.runID, i), e.opts.password)
		fresh[i] = u
		return err
	})
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	e.logf("registered %d accounts in %.1fs (%.1f/s; %d answers 429 so far)", n, took.Seconds(), float64(n)/took.Seconds(), c.rateLimited.Load())
	return fresh, nil
}
