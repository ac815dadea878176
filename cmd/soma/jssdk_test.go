package main

import (
	"testing"
	"time"
)

// jssdkDir holds the matrix-js-sdk client flow (flow.mjs) and its pinned
// dependencies (package.json, package-lock.json).
const jssdkDir = "testdata/jssdk"

// TestMatrixJSSDK lets a real client SDK — matrix-js-sdk under Node — drive
// the server as a new user's client would: register, sync (filter upload,
// initial sync, long-polling), create a room, invite, join, chat both ways,
// topic and display name, history through /messages, leave. The steps and
// their checks are in testdata/jssdk/flow.mjs.
func TestMatrixJSSDK(t *testing.T) {
	requireTool(t, "node", "Node 20+ with npm runs the matrix-js-sdk end-to-end test")
	ensureNodeModules(t, jssdkDir, "matrix-js-sdk")
	forEachBackend(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		runNodeScript(t, srv, jssdkDir, 2*time.Minute, nil, []string{"jssdk:", "note:"}, "flow.mjs", srv.baseURL)
	})
}
