package main

import (
	"testing"
	"time"
)

// jssdkDir holds the matrix-js-sdk client flows (flow.mjs, chat.mjs, and
// harness.mjs which they share) and their pinned dependencies (package.json,
// package-lock.json).
const jssdkDir = "testdata/jssdk"

// TestMatrixJSSDK lets a real client SDK — matrix-js-sdk under Node — drive
// the server as a new user's client would: register, sync (filter upload,
// initial sync, long-polling), create a room, invite, join, chat both ways,
// topic and display name, history through /messages, leave. The steps and
// their checks are in testdata/jssdk/flow.mjs.
func TestMatrixJSSDK(t *testing.T) {
	runJSSDKFlow(t, "flow.mjs", 2*time.Minute)
}

// TestMatrixJSSDKEncryptedChat lets two matrix-js-sdk clients with the SDK's
// Rust crypto use the server as two people on their own devices would:
// cross-signing (reset through UIA m.login.password), secret storage and key
// backup; an encrypted room whose messages each client decrypts, and a new
// device that reads them after restoring the key backup; SAS
// verification of each other in the room, and of the new device over
// to-device messages (after which it gets the cross-signing keys as
// secrets and the other user trusts it); typing, read receipts and unread
// counts; an edit, a reaction and a redaction; an image uploaded and
// downloaded through authenticated media; a public room found in the
// directory and joined through its alias; a search of the history, which
// finds the unencrypted room's words and not the encrypted one's. The steps
// and their checks are in testdata/jssdk/chat.mjs.
func TestMatrixJSSDKEncryptedChat(t *testing.T) {
	runJSSDKFlow(t, "chat.mjs", 4*time.Minute)
}

// runJSSDKFlow runs one flow against a fresh server on each backend.
func runJSSDKFlow(t *testing.T, script string, timeout time.Duration) {
	requireTool(t, "node", "Node 20+ with npm runs the matrix-js-sdk end-to-end test")
	ensureNodeModules(t, jssdkDir, "matrix-js-sdk")
	forEachBackendInTurn(t, func(t *testing.T, env []string, dataDir string) {
		srv := startServer(t, dataDir, env...)
		runNodeScript(t, srv, jssdkDir, timeout, nil, []string{"jssdk:", "note:"}, script, srv.baseURL)
	})
}
