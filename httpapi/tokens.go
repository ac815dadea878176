package httpapi

import (
	"strconv"
	"strings"

	"github.com/soma-chat/soma/persistence"
)

// Stream tokens are "s<position>": the point just after the event at that
// stream position. /sync's next_batch and prev_batch and /messages' start
// and end share the format, so one can be handed to the other.
func streamToken(p persistence.StreamPos) string {
	return "s" + strconv.FormatInt(int64(p), 10)
}

func parseStreamToken(tok string) (persistence.StreamPos, error) {
	rest, ok := strings.CutPrefix(tok, "s")
	if !ok {
		// Tokens from other servers' formats, e.g. "t12-34", are not ours.
		return 0, errInvalidParam("invalid pagination token")
	}
	// A later version may append other streams after an underscore.
	rest, _, _ = strings.Cut(rest, "_")
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n < 0 {
		return 0, errInvalidParam("invalid pagination token")
	}
	return persistence.StreamPos(n), nil
}

// syncToken is /sync's next_batch: the stream token, then the node's
// typing serial after an underscore ("s<position>_<typing>"). Handed to
// /messages, it reads as its stream token.
func syncToken(p persistence.StreamPos, typing int64) string {
	return streamToken(p) + "_" + strconv.FormatInt(typing, 10)
}

// parseSyncToken reads a since token; a plain stream token has typing 0.
func parseSyncToken(tok string) (persistence.StreamPos, int64, error) {
	p, err := parseStreamToken(tok)
	if err != nil {
		return 0, 0, err
	}
	var typing int64
	if _, t, ok := strings.Cut(tok, "_"); ok {
		typing, err = strconv.ParseInt(t, 10, 64)
		if err != nil || typing < 0 {
			return 0, 0, errInvalidParam("invalid sync token")
		}
	}
	return p, typing, nil
}
