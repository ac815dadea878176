package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/actors"
	"github.com/soma-chat/soma/actors/metrics"
	"github.com/soma-chat/soma/config"
	"github.com/soma-chat/soma/federation"
	"github.com/soma-chat/soma/httpapi"
	"github.com/soma-chat/soma/persistence"
	"github.com/soma-chat/soma/persistence/mediafiles"
)

// federationNode is the federation side of a node: the outbound client,
// the senders of the outbound queue and the TLS listener serving the
// Server-Server API.
type federationNode struct {
	client      *federation.Client
	memberships *federation.Memberships
	backfiller  *federation.Backfiller
	// senders send what rooms queue for remote servers: after a commit
	// whose events have Destinations, call senders.Wake(destinations...).
	senders *federation.Senders
	// edus queues local users' EDUs for other servers.
	edus *federation.OutboundEDUs
	http *http.Server
	addr net.Addr
}

// startFederation starts the federation listener, or does nothing (nil)
// when federation.listen is empty: a server others cannot reach cannot
// have its signatures checked, so it makes no outbound requests either.
func startFederation(cfg *config.Config, key *federation.SigningKey, store persistence.Store, rooms actors.RoomRouter, system *actor.ActorSystem, actorMetrics *metrics.Actors, sendersFor *atomic.Pointer[federation.Senders], edus federation.EDUReceivers, mediaFiles *mediafiles.Store, base context.Context, log zerolog.Logger, failed chan<- error) (*federationNode, error) {
	fc := cfg.Federation
	if fc.Listen == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(fc.TLSCertPath, fc.TLSKeyPath)
	if err != nil {
		return nil, fmt.Errorf("federation TLS pair (federation.tls_cert_path, federation.tls_key_path; somactl generate-tls writes a self-signed one for development): %w", err)
	}
	self := &federation.Identity{ServerName: spec.ServerName(cfg.ServerName), Key: key, KeyValidity: fc.KeyValidity.Duration}
	for _, entry := range fc.OldVerifyKeys {
		id, pub, expired, err := config.ParseOldVerifyKey(entry) // valid: Load checked it
		if err != nil {
			return nil, fmt.Errorf("federation.old_verify_keys: %w", err)
		}
		self.OldKeys = append(self.OldKeys, federation.OldKey{KeyID: gomatrixserverlib.KeyID(id), Public: pub, ExpiredTS: spec.Timestamp(expired)})
	}
	client := federation.NewClient(self, federation.ClientOptions{SkipTLSVerify: fc.SkipTLSVerify, AllowPrivateNetworks: fc.AllowPrivateNetworks})
	keyRing := federation.NewKeyRing(self, store, client, log)
	senders := federation.NewSenders(system, federation.SendersOptions{
		Origin: self.ServerName, Queue: store, Client: client,
		RetryMin: fc.RetryMin.Duration, RetryMax: fc.RetryMax.Duration,
		Metrics: actorMetrics, Log: log.With().Str("component", "federation_sender").Logger(),
	})
	// What was queued before a restart is sent now.
	sendersFor.Store(senders) // the rooms wake them; before Start, which may activate rooms
	if err := senders.Start(context.Background()); err != nil {
		senders.Stop()
		return nil, err
	}
	api := federation.NewServer(federation.ServerOptions{
		Self: self, KeyRing: keyRing, Profiles: store, UserKeys: store, Directory: store,
		Rooms: rooms, RoomEvents: store, Accounts: store, Missing: federation.NewMissingEvents(client, keyRing, store),
		Heard: func(origin spec.ServerName) { senders.BackOnline(string(origin)) },
		EDUs:  edus,
		Media: store, MediaFiles: mediaFiles,
		Log: log,
	})

	ln, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		senders.Stop()
		return nil, fmt.Errorf("federation listener: %w", err)
	}
	f := &federationNode{client: client, memberships: federation.NewMemberships(self, client, keyRing, rooms, log),
		backfiller: federation.NewBackfiller(self, client, keyRing, rooms, log), senders: senders, addr: ln.Addr(),
		edus: federation.NewOutboundEDUs(self.ServerName, senders, store)}
	f.http = &http.Server{
		Handler:           api.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	go func() {
		if err := f.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- err
		}
	}()
	if fc.SkipTLSVerify {
		log.Warn().Msg("federation.skip_tls_verify is on: remote servers' certificates are not checked (development only)")
	}
	if fc.AllowPrivateNetworks {
		log.Warn().Msg("federation.allow_private_networks is on: remote servers may make this one call into private networks (development only)")
	}
	return f, nil
}

// remoteProfiles is what the client API asks remote profiles of: none
// without federation.
func (f *federationNode) remoteProfiles() httpapi.RemoteProfiles {
	if f == nil {
		return nil
	}
	return f.client
}

// remoteMedia downloads other servers' media: none without federation.
func (f *federationNode) remoteMedia() httpapi.RemoteMedia {
	if f == nil {
		return nil
	}
	return f.client
}

// remoteMemberships changes memberships across servers: none without
// federation.
func (f *federationNode) remoteMemberships() httpapi.RemoteMemberships {
	if f == nil {
		return nil
	}
	return f.memberships
}

// remoteKeys is what the client API asks remote users' keys of: none
// without federation.
func (f *federationNode) remoteKeys() httpapi.RemoteKeys {
	if f == nil {
		return nil
	}
	return f.client
}

// remoteDirectory is what the client API asks remote aliases and public
// room lists of: none without federation.
func (f *federationNode) remoteDirectory() httpapi.RemoteDirectory {
	if f == nil {
		return nil
	}
	return f.client
}

// remoteHistory fetches rooms' history from other servers: none without
// federation.
func (f *federationNode) remoteHistory() httpapi.RemoteHistory {
	if f == nil {
		return nil
	}
	return f.backfiller
}

// outboundEDUs sends local users' EDUs to other servers: none without
// federation.
func (f *federationNode) outboundEDUs() httpapi.FederationEDUs {
	if f == nil {
		return nil
	}
	return f.edus
}

// presenceBacklog bounds the presence changes waiting to be queued for
// other servers; past it, changes are dropped (presence is best effort).
const presenceBacklog = 4096

// sendPresence makes local users' presence changes go to the servers
// sharing a room with them, in the order they happen, until ctx ends.
func (f *federationNode) sendPresence(ctx context.Context, p *actors.Presence, log zerolog.Logger) {
	if f == nil || p == nil {
		return
	}
	changes := make(chan federation.PresenceUpdate, presenceBacklog)
	p.OnChange(func(userID string, st actors.PresenceState) {
		select {
		case changes <- federation.PresenceUpdate{UserID: userID, Presence: st.Presence, StatusMsg: st.StatusMsg, LastActive: st.LastActive, CurrentlyActive: st.CurrentlyActive}:
		default:
			log.Warn().Str("user_id", userID).Msg("too many presence changes waiting: one is not sent to other servers")
		}
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-changes:
				if err := f.edus.Presence(ctx, u, time.Now()); err != nil && ctx.Err() == nil {
					log.Warn().Err(err).Str("user_id", u.UserID).Msg("queueing presence for other servers failed")
				}
			}
		}
	}()
}

func (f *federationNode) shutdown(ctx context.Context, log zerolog.Logger) {
	if f == nil {
		return
	}
	if err := f.http.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("federation HTTP shutdown")
	}
	// Transactions in flight are abandoned; their rows stay queued and
	// go at the next start.
	f.senders.Stop()
}
