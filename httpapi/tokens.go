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
// typing and presence serials after underscores
// ("s<position>_<typing>_<presence>"). Handed to /messages, it reads as
// its stream token.
func syncToken(p persistence.StreamPos, typing, presence int64) string {
	return streamToken(p) + "_" + strconv.FormatInt(typing, 10) + "_" + strconv.FormatInt(presence, 10)
}

// syncSerials are the per-node serials a sync token carries after its
// stream position.
type syncSerials struct{ typing, presence int64 }

// parseSyncToken reads a since token; the serials a token lacks (a plain
// stream token, or one from before presence) are 0.
func parseSyncToken(tok string) (persistence.StreamPos, syncSerials, error) {
	p, err := parseStreamToken(tok)
	if err != nil {
		return 0, syncSerials{}, err
	}
	var ss syncSerials
	parts := strings.Split(tok, "_")[1:]
	for i, dst := range []*int64{&ss.typing, &ss.presence} {
		if i >= len(parts) {
			break
		}
		*dst, err = strconv.ParseInt(parts[i], 10, 64)
		if err != nil || *dst < 0 {
			return 0, syncSerials{}, errInvalidParam("invalid sync token")
		}
	}
	return p, ss, nil
}
