package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/soma-chat/soma/actors/metrics"
)

// The commands that call a running server's admin API (/_soma/admin/v1)
// with an admin's access token.

const adminAPIPrefix = "/_soma/admin/v1"

// adminTokenEnv names the environment variable read when -token is absent.
const adminTokenEnv = "SOMA_ADMIN_TOKEN"

const (
	roomsSummary         = "Usage: somactl rooms [-url http://127.0.0.1:8008] [-token T] [-sort events_per_second] [-limit 100]\n\nLists the active room actors with their live figures, highest first by\n-sort: events_per_second, mailbox_depth, joined_members or messages_processed."
	roomSummary          = "Usage: somactl room [-url ...] [-token T] ROOM_ID\n\nPrints the live figures of a room's actor as JSON; fails when the room\nis passivated (no actor of it is active) or unknown."
	usersSummary         = "Usage: somactl users [-url ...] [-token T] [-limit N]\n\nLists the local accounts by user ID: every one, or the first -limit."
	deactivateSummary    = "Usage: somactl deactivate [-url ...] [-token T] USER_ID\n\nDeactivates an account: it can no longer log in, and all its devices\nand access tokens are deleted."
	resetPasswordSummary = "Usage: somactl reset-password [-url ...] [-token T] [-password p] [-keep-devices] USER_ID\n\nSets a new password and logs out every device of the account, unless\n-keep-devices. Without -password the password is read from stdin:\nprompted for without echo on a terminal, else the first line."
)

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminClientFlags declares -url and -token; the returned func builds the
// client once the flags are parsed.
func adminClientFlags(fs *flag.FlagSet) func() (*adminClient, error) {
	base := fs.String("url", "http://127.0.0.1:8008", "the server's client API `URL`")
	token := fs.String("token", "", "an admin's access `token` (default: $"+adminTokenEnv+")")
	return func() (*adminClient, error) {
		t := *token
		if t == "" {
			t = os.Getenv(adminTokenEnv)
		}
		if t == "" {
			return nil, badUsage("an admin access token is required: -token or $%s", adminTokenEnv)
		}
		u, err := url.Parse(*base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, badUsage("-url %q is not an http(s) URL", *base)
		}
		return &adminClient{base: strings.TrimRight(*base, "/"), token: t, http: &http.Client{Timeout: 30 * time.Second}}, nil
	}
}

// apiError is an error reply of the server.
type apiError struct {
	Status  int
	ErrCode string `json:"errcode"`
	Err     string `json:"error"`
}

func (e *apiError) Error() string {
	if e.ErrCode == "" {
		return fmt.Sprintf("server answered %d", e.Status)
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.ErrCode, e.Err)
}

// do sends body (nil for none) as JSON to the admin API path and decodes
// the reply into out (nil to ignore it).
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+adminAPIPrefix+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding the reply: %w", err)
	}
	return nil
}

func roomsCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	client := adminClientFlags(fs)
	sortBy := fs.String("sort", "events_per_second", "order, highest first: events_per_second, mailbox_depth, joined_members or messages_processed")
	limit := fs.Int("limit", 100, "list at most `N` rooms (at most 1000)")
	return func(ctx context.Context, e *env) error {
		c, err := client()
		if err != nil {
			return err
		}
		q := url.Values{"sort": {*sortBy}, "limit": {strconv.Itoa(*limit)}}
		var resp struct {
			Rooms []metrics.RoomStats `json:"rooms"`
			Total int                 `json:"total"`
		}
		if err := c.do(ctx, "GET", "/rooms?"+q.Encode(), nil, &resp); err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "ROOM ID\tEVENTS/S\tMAILBOX\tMEMBERS\tPROCESSED\tP99 MS\tRESTARTS\tUP\t")
		now := time.Now()
		for _, r := range resp.Rooms {
			up := "-"
			if !r.ActivatedAt.IsZero() {
				up = now.Sub(r.ActivatedAt).Truncate(time.Second).String()
			}
			fmt.Fprintf(w, "%s\t%.2f\t%d\t%d\t%d\t%.1f\t%d\t%s\t\n", r.RoomID, r.EventsPerSecond, r.MailboxDepth,
				r.JoinedMembers, r.MessagesProcessed, r.MessageLatency.P99*1000, r.Restarts, up)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d of %d active rooms\n", len(resp.Rooms), resp.Total)
		return nil
	}
}

func roomCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	client := adminClientFlags(fs)
	return func(ctx context.Context, e *env) error {
		c, err := client()
		if err != nil {
			return err
		}
		var room json.RawMessage
		if err := c.do(ctx, "GET", "/rooms/"+url.PathEscape(e.args[0]), nil, &room); err != nil {
			return err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, room, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err = e.stdout.Write(out.Bytes())
		return err
	}
}

// usersPage is what the server returns at most per page.
const usersPage = 1000

func usersCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	client := adminClientFlags(fs)
	limit := fs.Int("limit", 0, "list at most `N` accounts (default: all)")
	return func(ctx context.Context, e *env) error {
		c, err := client()
		if err != nil {
			return err
		}
		if *limit < 0 {
			return badUsage("-limit must not be negative")
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "USER ID\tADMIN\tDEACTIVATED\tCREATED")
		from, listed := "", 0
		for {
			page := usersPage
			if *limit > 0 {
				page = min(page, *limit-listed)
			}
			q := url.Values{"limit": {strconv.Itoa(page)}}
			if from != "" {
				q.Set("from", from)
			}
			var resp struct {
				Users []struct {
					UserID      string `json:"user_id"`
					Admin       bool   `json:"admin"`
					Deactivated bool   `json:"deactivated"`
					CreatedTS   int64  `json:"created_ts"`
				} `json:"users"`
				NextToken string `json:"next_token"`
			}
			if err := c.do(ctx, "GET", "/users?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			for _, u := range resp.Users {
				created := time.UnixMilli(u.CreatedTS).UTC().Format(time.RFC3339)
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", u.UserID, yesNo(u.Admin), yesNo(u.Deactivated), created)
			}
			listed += len(resp.Users)
			if resp.NextToken == "" || (*limit > 0 && listed >= *limit) {
				break
			}
			from = resp.NextToken
		}
		return w.Flush()
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func deactivateCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	client := adminClientFlags(fs)
	return func(ctx context.Context, e *env) error {
		c, err := client()
		if err != nil {
			return err
		}
		userID := e.args[0]
		if err := c.do(ctx, "POST", "/users/"+url.PathEscape(userID)+"/deactivate", struct{}{}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deactivated %s\n", userID)
		return nil
	}
}

func resetPasswordCmd(fs *flag.FlagSet) func(context.Context, *env) error {
	client := adminClientFlags(fs)
	password := fs.String("password", "", "the new `password` (default: read from stdin)")
	keepDevices := fs.Bool("keep-devices", false, "leave the account's devices logged in")
	return func(ctx context.Context, e *env) error {
		c, err := client()
		if err != nil {
			return err
		}
		pw, err := passwordFrom(fs, *password, e)
		if err != nil {
			return err
		}
		userID := e.args[0]
		body := map[string]any{"new_password": pw, "logout_devices": !*keepDevices}
		if err := c.do(ctx, "POST", "/users/"+url.PathEscape(userID)+"/password", body, nil); err != nil {
			return err
		}
		if *keepDevices {
			fmt.Fprintf(e.stdout, "password of %s reset; its devices stay logged in\n", userID)
		} else {
			fmt.Fprintf(e.stdout, "password of %s reset; all its devices are logged out\n", userID)
		}
		return nil
	}
}
