package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/rs/zerolog"

	"github.com/soma-chat/soma/e2ekeys"
)

// Remote users' end-to-end keys: /keys/query and /keys/claim ask each
// server in one request, all servers at once, for at most the request's
// timeout; a server that fails or does not answer in time is listed in
// failures, keyed by its name, and the others' keys are returned.

// defaultRemoteTimeout is the spec's default for /keys/query and
// /keys/claim's timeout.
const defaultRemoteTimeout = 10 * time.Second

// remoteTimeout reads a request's timeout in milliseconds.
func remoteTimeout(ms *int64) time.Duration {
	if ms == nil || *ms <= 0 {
		return defaultRemoteTimeout
	}
	return min(time.Duration(*ms)*time.Millisecond, time.Minute)
}

// remoteFailure is a failures entry (the shape Synapse answers with).
type remoteFailure struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// eachServer runs ask for every server at once, bounded by timeout, and
// returns the failures by server name.
func eachServer[T any](ctx context.Context, timeout time.Duration, byServer map[string]T, ask func(ctx context.Context, server spec.ServerName, req T) error) map[string]any {
	failures := map[string]any{}
	if len(byServer) == 0 {
		return failures
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, req := range byServer {
		if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(server)); !ok {
			failures[server] = remoteFailure{Status: 400, Message: "Not a server name"}
			continue
		}
		wg.Go(func() {
			err := ask(ctx, spec.ServerName(server), req)
			if err == nil {
				return
			}
			zerolog.Ctx(ctx).Info().Err(err).Str("server_name", server).Msg("remote keys request failed")
			mu.Lock()
			failures[server] = remoteFailure{Status: 503, Message: "Could not reach the server: " + err.Error()}
			mu.Unlock()
		})
	}
	wg.Wait()
	return failures
}

// errFederationOff fails every remote request when federation is off.
type errFederationOff struct{}

func (errFederationOff) Error() string { return "federation is off on this server" }

// queryRemoteKeys asks each server for its users' keys and adds them to q.
func (s *Server) queryRemoteKeys(ctx context.Context, timeout time.Duration, byServer map[string]map[string][]string, q *e2ekeys.Query) map[string]any {
	var mu sync.Mutex
	return eachServer(ctx, timeout, byServer, func(ctx context.Context, server spec.ServerName, users map[string][]string) error {
		if s.opts.RemoteKeys == nil {
			return errFederationOff{}
		}
		res, err := s.opts.RemoteKeys.QueryKeys(ctx, server, users)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for userID, devices := range res.DeviceKeys {
			q.DeviceKeys[userID] = devices
		}
		for userID, k := range res.MasterKeys {
			q.Master[userID] = k
		}
		for userID, k := range res.SelfSigningKeys {
			q.SelfSigning[userID] = k
		}
		return nil
	})
}

// claimRemoteKeys claims keys of each server's users and adds them to out.
func (s *Server) claimRemoteKeys(ctx context.Context, timeout time.Duration, byServer map[string]map[string]map[string]string, out e2ekeys.Claimed) map[string]any {
	var mu sync.Mutex
	return eachServer(ctx, timeout, byServer, func(ctx context.Context, server spec.ServerName, users map[string]map[string]string) error {
		if s.opts.RemoteKeys == nil {
			return errFederationOff{}
		}
		res, err := s.opts.RemoteKeys.ClaimKeys(ctx, server, users)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for userID, devices := range res {
			out[userID] = devices
		}
		return nil
	})
}
