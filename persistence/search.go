package persistence

import (
	"context"
	"strings"
	"unicode"
)

// The keys of events the search index holds, as the spec names them: the
// body of m.room.message, the name of m.room.name, the topic of
// m.room.topic.
const (
	SearchKeyBody  = "content.body"
	SearchKeyName  = "content.name"
	SearchKeyTopic = "content.topic"
)

// SearchQuery is one page of a full text search over rooms' events.
type SearchQuery struct {
	// Term is the user's search term, as typed.
	Term string
	// Keys narrow the search to some of the SearchKey constants; nil means
	// all of them.
	Keys []string
	// Rooms are the rooms searched; none finds nothing.
	Rooms []RoomNID
	// To bounds the events searched: pos <= To (pass MaxStreamPos).
	To StreamPos
	// ByRank orders the results by relevance (then the most recent first);
	// otherwise the most recent first.
	ByRank bool
	// Before, when ordering by recency and not 0, keeps only events at
	// pos < Before: the position of the last result of the previous page.
	Before StreamPos
	// Offset, when ordering by rank, skips that many results.
	Offset int
	// Limit bounds the results returned; none when < 1.
	Limit int
}

// SearchHit is one event found, with its relevance (higher is closer).
type SearchHit struct {
	Event StoredEvent
	Rank  float64
}

// SearchResults is a page of a search.
type SearchResults struct {
	Hits []SearchHit
	// Count is how many events of the rooms match in all, every page
	// together.
	Count int
	// Words are the words of the term the index matched on.
	Words []string
}

// EventSearcher finds events by the words of their text. The index is a
// projection written when events are committed; a redaction removes its
// event's text from it.
type EventSearcher interface {
	SearchEvents(ctx context.Context, q SearchQuery) (*SearchResults, error)
}

// SearchWords splits a search term into the lowercased runs of letters and
// digits that the indexes match (quotes, operators and punctuation are
// dropped).
func SearchWords(term string) []string {
	words := strings.FieldsFunc(strings.ToLower(term), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r)
	})
	seen := map[string]bool{}
	out := words[:0]
	for _, w := range words {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}
