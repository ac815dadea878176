package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/soma-chat/soma/accounts"
	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/backends"
)

func createAccountCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	cfgPath := fs.String("config", "", "the server's config `file` (default: built-in defaults and SOMA_* variables)")
	username := fs.String("username", "", "the new account's localpart, or its full user ID (required)")
	password := fs.String("password", "", "the `password` (default: read from stdin)")
	admin := fs.Bool("admin", false, "make the account a server admin")
	return func(ctx context.Context, e *env) error {
		if *username == "" {
			return badUsage("-username is required")
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		localpart, err := localpartOf(*username, cfg.ServerName)
		if err != nil {
			return err
		}
		pw, err := passwordFrom(fs, *password, e)
		if err != nil {
			return err
		}
		userID, err := createAccount(ctx, cfg, localpart, pw, *admin)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, userID)
		return nil
	}
}

// localpartOf accepts "alice", "Alice" or "@alice:server" (of this server)
// and returns the localpart, lower-cased as registration does.
func localpartOf(username, serverName string) (string, error) {
	lp := username
	if rest, ok := strings.CutPrefix(username, "@"); ok {
		var server string
		lp, server, ok = strings.Cut(rest, ":")
		if !ok || server != serverName {
			return "", fmt.Errorf("%q is not a user ID of this server (%s)", username, serverName)
		}
	}
	lp = strings.ToLower(lp)
	if err := accounts.ValidateLocalpart(lp, serverName); err != nil {
		return "", err
	}
	return lp, nil
}

// createAccount stores the account and returns its user ID.
func createAccount(ctx context.Context, cfg *config.Config, localpart, password string, admin bool) (string, error) {
	userID := "@" + localpart + ":" + cfg.ServerName
	hash, err := accounts.HashPassword(password)
	if err != nil {
		return "", err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer store.Close()
	err = store.CreateAccount(ctx, persistence.Account{
		Localpart:    localpart,
		PasswordHash: hash,
		IsAdmin:      admin,
		CreatedTS:    time.Now().UnixMilli(),
	})
	if errors.Is(err, persistence.ErrUserExists) {
		return "", fmt.Errorf("user %s already exists", userID)
	}
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", userID, err)
	}
	// Registration shows a new user by their localpart until they choose a
	// display name; so do accounts made here.
	if err := store.SetDisplayName(ctx, localpart, localpart); err != nil {
		return "", fmt.Errorf("setting the display name of %s: %w", userID, err)
	}
	return userID, nil
}

func openStore(ctx context.Context, cfg *config.Config) (persistence.Store, error) {
	db := cfg.Database
	store, err := backends.Open(ctx, backends.Config{
		Backend:      db.Backend,
		SQLitePath:   db.SQLitePath,
		SQLiteDriver: db.SQLiteDriver,
		PostgresDSN:  db.PostgresDSN,
		MaxOpenConns: db.MaxOpenConns,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the %s database: %w", db.Backend, err)
	}
	return store, nil
}

// readPassword prompts for the password without echo on a terminal, twice;
// otherwise it reads the first line of stdin.
func readPassword(e *env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(e.stderr, "Password: ")
		p1, err := readNoEcho(f)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(e.stderr, "Confirm password: ")
		p2, err := readNoEcho(f)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if p1 != p2 {
			return "", errors.New("the passwords do not match")
		}
		return p1, nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on stdin (give -password or pipe it in)")
		}
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// passwordFrom is the -password flag when given, else what readPassword
// reads (a prompt on a terminal, a line of stdin otherwise); never empty.
func passwordFrom(fs *flag.FlagSet, flagValue string, e *env) (string, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "password" })
	pw := flagValue
	if !given {
		var err error
		if pw, err = readPassword(e); err != nil {
			return "", err
		}
	}
	if pw == "" {
		return "", errors.New("the password must not be empty")
	}
	return pw, nil
}
