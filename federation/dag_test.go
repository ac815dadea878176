package federation

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// graph is a room's events by ID; loading an ID not in it reads as an
// event this server does not have (or of another room).
type graph map[string]*dagEvent

func (g graph) load(_ context.Context, id string) (*dagEvent, error) {
	if id == "$broken" {
		return nil, errors.New("storage failed")
	}
	return g[id], nil
}

func (g graph) add(id string, depth int64, prev ...string) {
	g[id] = &dagEvent{ID: id, Depth: depth, Stream: persistence.StreamPos(len(g) + 1), Prev: prev}
}

// diamond builds $1 <- $2 <- ($3a, $3b) <- $4 <- $5, with $3b's parents
// including $gone (an event this server never had).
func diamond() graph {
	g := graph{}
	g.add("$1", 1)
	g.add("$2", 2, "$1")
	g.add("$3a", 3, "$2")
	g.add("$3b", 3, "$2", "$gone")
	g.add("$4", 4, "$3a", "$3b")
	g.add("$5", 5, "$4")
	return g
}

func ids(evs []*dagEvent) []string { return dagEventIDs(evs) }

func TestBackfillTakesTheFromEventsAndTheirAncestorsDeepestFirst(t *testing.T) {
	g := diamond()
	for _, tc := range []struct {
		name  string
		from  []string
		limit int
		want  []string
	}{
		{"whole room", []string{"$5"}, 100, []string{"$5", "$4", "$3b", "$3a", "$2", "$1"}},
		{"limit counts the from event", []string{"$5"}, 3, []string{"$5", "$4", "$3b"}},
		{"limit one is the from event", []string{"$4"}, 1, []string{"$4"}},
		{"limit zero", []string{"$5"}, 0, nil},
		{"two from events, shared ancestors once", []string{"$3a", "$3b"}, 100, []string{"$3b", "$3a", "$2", "$1"}},
		{"unknown from events are skipped", []string{"$nope", "$2"}, 100, []string{"$2", "$1"}},
		{"from an event twice", []string{"$2", "$2"}, 100, []string{"$2", "$1"}},
		{"nothing known", []string{"$nope"}, 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := walkBackfill(context.Background(), g.load, tc.from, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("backfill(%v, %d) = %v, want %v", tc.from, tc.limit, ids(got), tc.want)
			}
		})
	}
	if _, err := walkBackfill(context.Background(), graph{"$x": {ID: "$x", Prev: []string{"$broken"}}}.load, []string{"$x"}, 10); err == nil {
		t.Fatal("a storage error was swallowed")
	}
}

func TestGetMissingEventsWalksBackToTheEarliestEventsOldestFirst(t *testing.T) {
	g := diamond()
	for _, tc := range []struct {
		name             string
		earliest, latest []string
		limit            int
		minDepth         int64
		want             []string
	}{
		{"gap between $2 and $5", []string{"$2"}, []string{"$5"}, 10, 0, []string{"$3a", "$3b", "$4"}},
		{"no earliest: the whole history", nil, []string{"$5"}, 10, 0, []string{"$1", "$2", "$3a", "$3b", "$4"}},
		{"limit keeps the newest", []string{"$1"}, []string{"$5"}, 2, 0, []string{"$3a", "$4"}},
		{"min_depth stops the walk", nil, []string{"$5"}, 10, 3, []string{"$3a", "$3b", "$4"}},
		{"latest is earliest", []string{"$5"}, []string{"$5"}, 10, 0, nil},
		{"earliest on one branch only", []string{"$3a"}, []string{"$4"}, 10, 0, []string{"$1", "$2", "$3b"}},
		{"unknown latest", nil, []string{"$nope"}, 10, 0, nil},
		{"limit zero", nil, []string{"$5"}, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := walkMissing(context.Background(), g.load, tc.earliest, tc.latest, tc.limit, tc.minDepth)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("missing(%v, %v, %d, %d) = %v, want %v", tc.earliest, tc.latest, tc.limit, tc.minDepth, ids(got), tc.want)
			}
		})
	}
}

func TestAuthChainIsEveryAuthAncestorOnceShallowestFirst(t *testing.T) {
	g := graph{
		"$create": {ID: "$create", Depth: 1},
		"$join":   {ID: "$join", Depth: 2, Auth: []string{"$create"}},
		"$pl":     {ID: "$pl", Depth: 3, Auth: []string{"$create", "$join"}},
		"$jr":     {ID: "$jr", Depth: 4, Auth: []string{"$create", "$join", "$pl"}},
		"$msg":    {ID: "$msg", Depth: 5, Auth: []string{"$create", "$join", "$pl", "$lost"}},
	}
	got, err := walkAuthChain(context.Background(), g.load, []*dagEvent{g["$msg"]})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"$create", "$join", "$pl"}; !slices.Equal(ids(got), want) {
		t.Fatalf("auth chain of $msg = %v, want %v", ids(got), want)
	}
	// The chain of a state: the state events are in it only as auth events.
	got, err = walkAuthChain(context.Background(), g.load, []*dagEvent{g["$create"], g["$join"], g["$pl"], g["$jr"]})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"$create", "$join", "$pl"}; !slices.Equal(ids(got), want) {
		t.Fatalf("auth chain of the state = %v, want %v", ids(got), want)
	}
	if _, err := walkAuthChain(context.Background(), graph{}.load, []*dagEvent{{ID: "$x", Auth: []string{"$broken"}}}); err == nil {
		t.Fatal("a storage error was swallowed")
	}
}
