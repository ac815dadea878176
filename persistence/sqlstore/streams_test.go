package sqlstore

import (
	"testing"

	"github.com/soma-chat/soma/persistence"
)

func TestStreamTrackerHoldsBackUncommittedPositions(t *testing.T) {
	tr := newStreamTracker(10)
	check := func(step string, want persistence.StreamPos) {
		t.Helper()
		if got := tr.max(); got != want {
			t.Fatalf("%s: max %d, want %d", step, got, want)
		}
	}
	check("at open", 10)

	// A's statement is in flight when B gets 12 and commits: A may still
	// come back with 11, so nothing above 10 is readable.
	a := tr.beginAlloc()
	b := tr.beginAlloc()
	tr.endAlloc(b, 12, true)
	tr.finish([]persistence.StreamPos{12}, true)
	check("B committed while A's allocation is in flight", 10)
	tr.endAlloc(a, 11, true)
	check("A allocated 11, not committed", 10)
	tr.finish([]persistence.StreamPos{11}, true)
	check("A committed", 12)

	// A rolled-back position never holds readers back.
	c := tr.beginAlloc()
	tr.endAlloc(c, 13, true)
	d := tr.beginAlloc()
	tr.endAlloc(d, 14, true)
	tr.finish([]persistence.StreamPos{14}, true)
	check("13 pending, 14 committed", 12)
	tr.finish([]persistence.StreamPos{13}, false)
	check("13 rolled back", 14)

	// A failed allocation is forgotten.
	e := tr.beginAlloc()
	tr.endAlloc(e, 0, false)
	check("failed allocation", 14)

	// Several positions of one transaction.
	f := tr.beginAlloc()
	tr.endAlloc(f, 15, true)
	g := tr.beginAlloc()
	tr.endAlloc(g, 16, true)
	check("15 and 16 pending", 14)
	tr.finish([]persistence.StreamPos{15, 16}, true)
	check("15 and 16 committed", 16)
	if len(tr.pending) != 0 || len(tr.inFlight) != 0 {
		t.Fatalf("tracker kept %v pending and %v in flight", tr.pending, tr.inFlight)
	}
}

func TestRewriteAppliesTheDialect(t *testing.T) {
	sqlite := Dialect{Name: "s", NextStreamPos: "(next)", NextStateBlockNID: "(block)",
		InNIDs: "%[1]s IN (SELECT value FROM json_each(%[2]s))", NIDList: "[%s]", NumberedQuestionMarks: true, LimitParamAsExpression: true}
	pg := Dialect{Name: "p", NextStreamPos: "nextval('s')", NextStateBlockNID: "nextval('b')",
		InNIDs: "%[1]s = ANY(%[2]s::BIGINT[])", NIDList: "{%s}"}
	q := "INSERT INTO x VALUES ($2, {next_stream_pos}, $1) WHERE IN_NIDS(e.event_nid, $10) AND $1 = {next_state_block_nid} LIMIT $3"
	for _, tc := range []struct {
		d    Dialect
		want string
	}{
		{sqlite, "INSERT INTO x VALUES (?2, (next), ?1) WHERE e.event_nid IN (SELECT value FROM json_each(?10)) AND ?1 = (block) LIMIT ?3 + 0"},
		{pg, "INSERT INTO x VALUES ($2, nextval('s'), $1) WHERE e.event_nid = ANY($10::BIGINT[]) AND $1 = nextval('b') LIMIT $3"},
	} {
		got, err := tc.d.rewrite(q)
		if err != nil || got != tc.want {
			t.Errorf("%s: rewrite = %q, %v\nwant %q", tc.d.Name, got, err, tc.want)
		}
	}
	if _, err := pg.rewrite("SELECT {next_typo}"); err == nil {
		t.Error("an unknown macro was left in the statement")
	}
}

func TestNIDListsRoundTripAndRejectBadData(t *testing.T) {
	for _, d := range []Dialect{{NIDList: "{%s}"}, {NIDList: "[%s]"}} {
		for _, nids := range [][]int64{nil, {7}, {1, 2, 300000000000}} {
			got, err := parseNIDs(d.formatNIDs(nids))
			if err != nil || len(got) != len(nids) {
				t.Fatalf("%q round trip of %v = %v, %v", d.NIDList, nids, got, err)
			}
			for i := range nids {
				if got[i] != nids[i] {
					t.Fatalf("%q round trip of %v = %v", d.NIDList, nids, got)
				}
			}
		}
	}
	for _, bad := range []string{"", "1,2", "{1,2]", "{1,,2}", "{0}", "{-3}", "[x]", "{"} {
		if nids, err := parseNIDs(bad); err == nil {
			t.Errorf("parseNIDs(%q) = %v, want an error", bad, nids)
		}
	}
}
