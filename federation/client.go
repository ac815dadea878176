package federation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// requestTimeout bounds one outbound federation request.
const requestTimeout = 30 * time.Second

// Client calls other homeservers. Every request but key fetches is signed
// with X-Matrix by this server's key. Destinations are found by
// gomatrixserverlib's resolver (the spec's order: IP literal or explicit
// port as they are, else /.well-known/matrix/server, SRV _matrix-fed._tcp
// then _matrix._tcp, else port 8448), and reached over TLS.
type Client struct {
	self *Identity
	fed  fclient.FederationClient
}

// ClientOptions are the outbound client's switches, both off in production.
type ClientOptions struct {
	// SkipTLSVerify accepts any certificate (self-signed ones in
	// development and tests).
	SkipTLSVerify bool
	// AllowPrivateNetworks lets requests reach loopback, private,
	// link-local and unique-local addresses. Off, a server name (or an
	// X-Matrix origin, or a notary query) resolving to one is refused at
	// dial time, so that nobody on the federation can make this server
	// call into its own network.
	AllowPrivateNetworks bool
}

// privateNetworks are refused unless AllowPrivateNetworks.
var privateNetworks = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8",
}

// NewClient makes the outbound client.
func NewClient(self *Identity, opts ClientOptions) *Client {
	options := []fclient.ClientOption{
		fclient.WithSkipVerify(opts.SkipTLSVerify),
		fclient.WithTimeout(requestTimeout),
		fclient.WithKeepAlives(true),
		fclient.WithUserAgent("Soma"),
	}
	if !opts.AllowPrivateNetworks {
		// fclient checks the deny list first, then wants the address in
		// the allow list: everything else is allowed.
		options = append(options, fclient.WithAllowDenyNetworks([]string{"0.0.0.0/0", "::/0"}, privateNetworks))
	}
	fed := fclient.NewFederationClient([]*fclient.SigningIdentity{self.signingIdentity()}, options...)
	return &Client{self: self, fed: fed}
}

// GetServerKeys implements gomatrixserverlib.KeyClient: a server's own
// key response (not signed: key requests are the one unauthenticated
// federation call).
func (c *Client) GetServerKeys(ctx context.Context, server spec.ServerName) (gomatrixserverlib.ServerKeys, error) {
	return c.fed.GetServerKeys(ctx, server)
}

// LookupServerKeys implements gomatrixserverlib.KeyClient: a notary query.
func (c *Client) LookupServerKeys(ctx context.Context, notary spec.ServerName, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) ([]gomatrixserverlib.ServerKeys, error) {
	return c.fed.LookupServerKeys(ctx, notary, reqs)
}

// SendTransaction implements TransactionSender: PUT
// /_matrix/federation/v1/send/{txnId} to t.Destination, signed, from this
// server (t.Origin is set to it). A non-2xx answer is a gomatrix.HTTPError
// (wrapped).
func (c *Client) SendTransaction(ctx context.Context, t gomatrixserverlib.Transaction) (fclient.RespSend, error) {
	if t.Destination == c.self.ServerName {
		return fclient.RespSend{}, fmt.Errorf("federation.SendTransaction: %s is this server", t.Destination)
	}
	t.Origin = c.self.ServerName
	res, err := c.fed.SendTransaction(ctx, t)
	if err != nil {
		return res, fmt.Errorf("federation.SendTransaction to %s: %w", t.Destination, err)
	}
	return res, nil
}

// ErrRemoteNotFound is returned when the remote server answered 404.
var ErrRemoteNotFound = errors.New("federation: the remote server has no such thing")

// Profile is a user's profile as a remote server gave it.
type Profile struct {
	DisplayName string
	AvatarURL   string
}

// LookupProfile asks the user's server for the user's profile (field ""
// for the whole profile, or "displayname" or "avatar_url"). A 404 from
// the remote server is ErrRemoteNotFound.
func (c *Client) LookupProfile(ctx context.Context, server spec.ServerName, userID, field string) (Profile, error) {
	if server == c.self.ServerName {
		return Profile{}, fmt.Errorf("federation.LookupProfile: %s is this server", server)
	}
	res, err := c.fed.LookupProfile(ctx, c.self.ServerName, server, userID, field)
	if err != nil {
		return Profile{}, remoteError("federation.LookupProfile", err)
	}
	return Profile{DisplayName: res.DisplayName, AvatarURL: res.AvatarURL}, nil
}

// remoteError maps a remote server's 404 to ErrRemoteNotFound.
func remoteError(op string, err error) error {
	var httpErr gomatrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Code == http.StatusNotFound {
		return fmt.Errorf("%s: %w", op, ErrRemoteNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}
