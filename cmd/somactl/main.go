// Command somactl administers a Soma homeserver: it writes a sample config
// and signing keys, creates accounts in the configured database, and checks
// that stored rooms are consistent with their events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `somactl administers a Soma homeserver.

Usage:
  somactl <command> [flags]

Commands:
  generate-config  print a commented sample configuration, every key at its default
  generate-keys    write a new federation signing key (never replaces one)
  generate-tls     write a self-signed TLS pair for the federation listener (development)
  old-key-entry    print the federation.old_verify_keys entry of the signing key
  create-account   create a local user account in the configured database
  verify-rooms     check each room's head, state and projections against its events
  rooms            list the active room actors with their live figures (admin API)
  room             show one room actor's live figures (admin API)
  users            list the local accounts (admin API)
  deactivate       deactivate an account and log out all its devices (admin API)
  reset-password   set a new password for an account (admin API)
  help             show this help, or a command's flags: somactl help <command>

Run "somactl <command> -h" for a command's flags. Configuration is read from
the -config file and SOMA_* environment variables, as the server reads it.
The admin API commands call a running server (-url) with an admin's access
token (-token, or SOMA_ADMIN_TOKEN).
`

// command is one subcommand: its flags and what it does once they parse.
type command struct {
	name    string
	summary string
	flags   func(fs *flag.FlagSet) func(ctx context.Context, env *env) error
	// args is how many arguments the command takes besides its flags,
	// which may come before or after them; run hands them over in env.args.
	args int
}

// env is what a command talks to; tests give their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// args are the command's arguments besides its flags.
	args []string
}

var commands = []command{
	{"generate-config", "Usage: somactl generate-config [-o path]\n\nPrints a commented sample configuration with every key at its default, or\nwrites it to a new file.", generateConfigCmd, 0},
	{"generate-keys", "Usage: somactl generate-keys [-config soma.yaml] [-o path]\n\nWrites a new ed25519 signing key to -o, by default the configured\nsigning_key_path. An existing key file is never replaced.", generateKeysCmd, 0},
	{"generate-tls", generateTLSSummary, generateTLSCmd, 0},
	{"old-key-entry", oldKeyEntrySummary, oldKeyEntryCmd, 0},
	{"create-account", "Usage: somactl create-account [-config soma.yaml] -username alice [-password p] [-admin]\n\nCreates an account in the configured database and prints its user ID.\nWithout -password the password is read from stdin: prompted for without\necho on a terminal, else the first line. Prefer stdin: -password shows in\nthe process list and shell history.", createAccountCmd, 0},
	{"verify-rooms", verifyRoomsSummary, verifyRoomsCmd, 0},
	{"rooms", roomsSummary, roomsCmd, 0},
	{"room", roomSummary, roomCmd, 1},
	{"users", usersSummary, usersCmd, 0},
	{"deactivate", deactivateSummary, deactivateCmd, 1},
	{"reset-password", resetPasswordSummary, resetPasswordCmd, 1},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status: 0 on success,
// 1 when the command failed, 2 for a bad command line.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 0 {
			if c := findCommand(args[0]); c != nil {
				fs := newFlagSet(c, e)
				c.flags(fs)
				fs.SetOutput(e.stdout)
				fs.Usage()
				return 0
			}
			fmt.Fprintf(e.stderr, "somactl: unknown command %q\n\n%s", args[0], usage)
			return 2
		}
		fmt.Fprint(e.stdout, usage)
		return 0
	}
	c := findCommand(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "somactl: unknown command %q\n\n%s", name, usage)
		return 2
	}
	fs := newFlagSet(c, e)
	do := c.flags(fs)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2 // the flag package has printed the problem and the usage
		}
		if fs.NArg() == 0 || len(positional) == c.args {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "somactl %s: unexpected argument %q\n", c.name, fs.Arg(0))
		fs.Usage()
		return 2
	}
	if len(positional) < c.args {
		fmt.Fprintf(e.stderr, "somactl %s: missing argument\n", c.name)
		fs.Usage()
		return 2
	}
	e.args = positional
	if err := do(ctx, e); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "somactl %s: %v\n", c.name, ue)
			fs.Usage()
			return 2
		}
		fmt.Fprintf(e.stderr, "somactl %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func newFlagSet(c *command, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("somactl "+c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", c.summary)
		fs.PrintDefaults()
	}
	return fs
}

// usageError is a problem with the command line found after parsing; run
// prints the command's usage with it and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badUsage(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}
