package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/soma-chat/soma/persistence"
)

// Conformance tests of the outbound federation queue: PDUs queued by the
// commit that stores them (and only by a commit that succeeds), EDUs
// queued by QueueEDU, both read oldest first per destination within the
// limits asked, deleted by seq.

// pending reads everything queued for destination as "pdu:<event ID>" and
// "edu:<type>:<content>" lines, PDUs then EDUs, checking that seqs increase.
func pending(t *testing.T, s persistence.Store, destination string, maxPDUs, maxEDUs int) ([]string, []int64) {
	t.Helper()
	pdus, edus, err := s.PendingFederation(bg, destination, maxPDUs, maxEDUs)
	noErr(t, "PendingFederation", err)
	out := []string{}
	var seqs []int64
	for i, p := range pdus {
		if i > 0 && p.Seq <= pdus[i-1].Seq {
			t.Fatalf("PDU seqs of %s do not increase: %+v", destination, pdus)
		}
		out = append(out, "pdu:"+p.EventID)
		seqs = append(seqs, p.Seq)
	}
	for i, e := range edus {
		if i > 0 && e.Seq <= edus[i-1].Seq {
			t.Fatalf("EDU seqs of %s do not increase: %+v", destination, edus)
		}
		out = append(out, "edu:"+e.Type+":"+string(e.Content))
		seqs = append(seqs, e.Seq)
	}
	return out, seqs
}

func queuedDestinations(t *testing.T, s persistence.Store) []string {
	t.Helper()
	ds, err := s.QueuedDestinations(bg)
	noErr(t, "QueuedDestinations", err)
	if ds == nil {
		ds = []string{}
	}
	return ds
}

func testFederationQueue(t *testing.T, s persistence.Store) {
	if got := queuedDestinations(t, s); len(got) != 0 {
		t.Fatalf("a new store has destinations %v", got)
	}
	r := newRoom(s, "!fedq:test")
	r.create(t, "@alice:test")
	one := r.message("@alice:test", "one")
	one.Destinations = []string{"a.example", "b.example", "a.example"} // a repeat is queued once
	two := r.member("@bob:b.example", "join")
	two.Destinations = []string{"b.example"}
	local := r.message("@alice:test", "for nobody")
	r.mustCommit(t, one, two, local)
	typing := `{"room_id":"!fedq:test","user_id":"@alice:test","typing":true}`
	noErr(t, "QueueEDU", s.QueueEDU(bg, []string{"a.example", "c.example"}, "m.typing", []byte(typing)))
	noErr(t, "QueueEDU for nobody", s.QueueEDU(bg, nil, "m.typing", []byte(typing)))
	three := r.message("@alice:test", "three")
	three.Destinations = []string{"a.example"}
	r.mustCommit(t, three)
	noErr(t, "QueueEDU", s.QueueEDU(bg, []string{"a.example"}, "m.receipt", []byte(`{}`)))

	if err := s.QueueEDU(bg, []string{"a.example", ""}, "m.typing", []byte(typing)); err == nil {
		t.Fatal("QueueEDU queued an EDU for an empty destination")
	}
	if err := s.QueueEDU(bg, []string{"a.example"}, "m.typing", []byte(`{"not json`)); err == nil {
		t.Fatal("QueueEDU queued content that is not JSON")
	}
	if err := s.QueueEDU(bg, []string{"a.example"}, "", []byte(`{}`)); err == nil {
		t.Fatal("QueueEDU queued an EDU without a type")
	}

	if got, want := queuedDestinations(t, s), []string{"a.example", "b.example", "c.example"}; !slices.Equal(got, want) {
		t.Fatalf("QueuedDestinations = %v, want %v", got, want)
	}
	got, aSeqs := pending(t, s, "a.example", persistence.MaxTransactionPDUs, persistence.MaxTransactionEDUs)
	want := []string{"pdu:" + one.EventID, "pdu:" + three.EventID, "edu:m.typing:" + typing, "edu:m.receipt:{}"}
	if !slices.Equal(got, want) {
		t.Fatalf("a.example's queue = %v, want %v", got, want)
	}
	// The PDUs are the stored JSON, byte for byte.
	pdus, _, err := s.PendingFederation(bg, "a.example", 1, 0)
	noErr(t, "PendingFederation", err)
	if len(pdus) != 1 || string(pdus[0].JSON) != r.json[one.EventID] {
		t.Fatalf("PendingFederation(a, 1, 0) = %+v, want %s exactly", pdus, r.json[one.EventID])
	}
	if got, _ := pending(t, s, "a.example", 0, 1); !slices.Equal(got, want[2:3]) {
		t.Fatalf("a.example's queue with limits 0, 1 = %v, want %v", got, want[2:3])
	}
	if got, _ := pending(t, s, "b.example", 10, 10); !slices.Equal(got, []string{"pdu:" + one.EventID, "pdu:" + two.EventID}) {
		t.Fatalf("b.example's queue = %v", got)
	}
	if got, _ := pending(t, s, "nobody.example", 10, 10); len(got) != 0 {
		t.Fatalf("an unknown destination's queue = %v", got)
	}

	// Deleting is per destination: a's seqs do not delete b's rows, and
	// seqs that are gone are no error.
	_, bSeqs := pending(t, s, "b.example", 10, 10)
	noErr(t, "DeleteFederationQueued", s.DeleteFederationQueued(bg, "b.example", aSeqs))
	if got, _ := pending(t, s, "a.example", 10, 10); len(got) != 4 {
		t.Fatalf("deleting a's seqs for b deleted some of a's rows: %v", got)
	}
	noErr(t, "DeleteFederationQueued", s.DeleteFederationQueued(bg, "a.example", aSeqs[:1]))
	if got, _ := pending(t, s, "a.example", 10, 10); !slices.Equal(got, want[1:]) {
		t.Fatalf("a.example's queue after deleting its first row = %v, want %v", got, want[1:])
	}
	noErr(t, "DeleteFederationQueued", s.DeleteFederationQueued(bg, "a.example", aSeqs))
	noErr(t, "DeleteFederationQueued of none", s.DeleteFederationQueued(bg, "a.example", nil))
	if got, _ := pending(t, s, "a.example", 10, 10); len(got) != 0 {
		t.Fatalf("a.example's queue after deleting it all = %v", got)
	}
	if got, _ := pending(t, s, "b.example", 10, 10); len(got) != len(bSeqs) {
		t.Fatalf("b.example's queue after deleting a's = %v", got)
	}
	if got, want := queuedDestinations(t, s), []string{"b.example", "c.example"}; !slices.Equal(got, want) {
		t.Fatalf("QueuedDestinations after a is sent = %v, want %v", got, want)
	}

	// New rows take seqs after the deleted ones: a sender that read
	// before cannot delete them by mistake.
	four := r.message("@alice:test", "four")
	four.Destinations = []string{"a.example"}
	r.mustCommit(t, four)
	pdus, _, err = s.PendingFederation(bg, "a.example", 10, 10)
	noErr(t, "PendingFederation", err)
	if len(pdus) != 1 || pdus[0].EventID != four.EventID || slices.Contains(aSeqs, pdus[0].Seq) {
		t.Fatalf("a.example's queue = %+v, want %s with a new seq (not one of %v)", pdus, four.EventID, aSeqs)
	}
}

// A room on many servers: one row each, however many (the store may write
// them in several statements), duplicates once.
func testFederationQueueManyDestinations(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!fedmany:test")
	r.create(t, "@alice:test")
	var ds []string
	for i := range 1234 {
		ds = append(ds, fmt.Sprintf("s%04d.example", i))
	}
	ev := r.message("@alice:test", "to everyone")
	ev.Destinations = append(slices.Clone(ds), ds[:10]...)
	r.mustCommit(t, ev)
	noErr(t, "QueueEDU", s.QueueEDU(bg, append(slices.Clone(ds), ds[5]), "m.presence", []byte(`{"push":[]}`)))
	if got := queuedDestinations(t, s); !slices.Equal(got, ds) {
		t.Fatalf("QueuedDestinations has %d destinations, want %d", len(got), len(ds))
	}
	for _, d := range []string{ds[0], ds[499], ds[500], ds[1233]} {
		want := []string{"pdu:" + ev.EventID, `edu:m.presence:{"push":[]}`}
		if got, _ := pending(t, s, d, 10, 10); !slices.Equal(got, want) {
			t.Fatalf("%s's queue = %v, want %v", d, got, want)
		}
	}
}

func testFederationQueueOnlyCommitted(t *testing.T, s persistence.Store) {
	r := newRoom(s, "!fedfail:test")
	r.create(t, "@alice:test")
	r.mustCommit(t, r.message("@alice:test", "one"))
	head, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	r.epoch = head.Epoch

	// A batch that fails on a duplicate event ID after queueing.
	bad := *r
	queued := bad.message("@alice:test", "queued")
	queued.Destinations = []string{"a.example"}
	dup := bad.message("@alice:test", "dup")
	dup.EventID, dup.Destinations = r.events[0], []string{"b.example"}
	if _, err := bad.s.CommitEvents(bg, bad.request(queued, dup)); err == nil {
		t.Fatal("a batch with a duplicate event ID committed")
	}
	// A fenced commit.
	h2, err := s.ClaimRoom(bg, r.id)
	noErr(t, "ClaimRoom", err)
	stale := *r
	fenced := stale.message("@alice:test", "fenced")
	fenced.Destinations = []string{"c.example"}
	_, err = s.CommitEvents(bg, stale.request(fenced))
	wantErr(t, "stale commit", err, persistence.ErrFenced)
	// An empty destination is refused.
	r.epoch = h2.Epoch
	empty := *r
	ev := empty.message("@alice:test", "to nobody")
	ev.Destinations = []string{"a.example", ""}
	if _, err := s.CommitEvents(bg, empty.request(ev)); err == nil {
		t.Fatal("an event with an empty destination committed")
	}
	if got := queuedDestinations(t, s); len(got) != 0 {
		t.Fatalf("failed commits queued for %v", got)
	}
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		if got, _ := pending(t, s, d, 10, 10); len(got) != 0 {
			t.Fatalf("failed commits queued %v for %s", got, d)
		}
	}
	// The live activation's commit queues.
	ok := r.message("@alice:test", "sent")
	ok.Destinations = []string{"a.example"}
	r.mustCommit(t, ok)
	if got, _ := pending(t, s, "a.example", 10, 10); !slices.Equal(got, []string{"pdu:" + ok.EventID}) {
		t.Fatalf("a.example's queue = %v, want %s", got, ok.EventID)
	}
}
