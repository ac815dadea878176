package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/soma-chat/soma/persistence"
)

const (
	defaultTimelineLimit = 10
	maxTimelineLimit     = 200
	maxSyncTimeout       = 5 * time.Minute
)

type syncRequest struct {
	userID    string
	deviceID  string
	since     persistence.StreamPos
	hasSince  bool // since given: an incremental sync, even from s0
	fullState bool
	limit     int
	leave     bool // include left rooms in an initial sync
	filter    *syncFilter

	// typingSince is the since token's typing serial; typingTo is set by
	// computeSync to the serial its next_batch carries.
	typingSince, typingTo int64
	// presenceSince and presenceTo are the same for presence;
	// presenceUsers are the users whose presence the sync shows.
	presenceSince, presenceTo int64
	presenceUsers             []string
}

type timeline struct {
	Events    []*clientEvent `json:"events"`
	Limited   bool           `json:"limited"`
	PrevBatch string         `json:"prev_batch,omitempty"`
}

type eventList[T any] struct {
	Events []T `json:"events"`
}

type joinedRoom struct {
	Timeline            timeline                `json:"timeline"`
	State               eventList[*clientEvent] `json:"state"`
	Ephemeral           eventList[any]          `json:"ephemeral"`
	AccountData         eventList[any]          `json:"account_data"`
	UnreadNotifications map[string]int          `json:"unread_notifications"`
	Summary             map[string]any          `json:"summary"`
}

type leftRoom struct {
	Timeline    timeline                `json:"timeline"`
	State       eventList[*clientEvent] `json:"state"`
	AccountData eventList[any]          `json:"account_data"`
}

type invitedRoom struct {
	InviteState eventList[*strippedEvent] `json:"invite_state"`
}

type syncRooms struct {
	Join   map[string]*joinedRoom  `json:"join"`
	Invite map[string]*invitedRoom `json:"invite"`
	Leave  map[string]*leftRoom    `json:"leave"`
}

type syncResponse struct {
	NextBatch   string         `json:"next_batch"`
	Rooms       syncRooms      `json:"rooms"`
	Presence    eventList[any] `json:"presence"`
	AccountData eventList[any] `json:"account_data"`
	ToDevice    eventList[any] `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
	OneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	// UnusedFallbackKeyTypes is always present: clients read its absence
	// as a server without fallback keys.
	UnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

func (r *syncResponse) empty() bool {
	return len(r.Rooms.Join) == 0 && len(r.Rooms.Invite) == 0 && len(r.Rooms.Leave) == 0 &&
		len(r.AccountData.Events) == 0 && len(r.Presence.Events) == 0 && len(r.ToDevice.Events) == 0 && len(r.DeviceLists.Changed) == 0
}

// syncHandler: GET /sync. It reads projections up to the store's safe
// position; when nothing is new it waits on the node's sync notifier
// (registered before reading again, so no wake-up is lost).
func (s *Server) syncHandler(r *http.Request) (int, any, error) {
	c := callerFrom(r.Context())
	q := r.URL.Query()
	req := syncRequest{userID: c.UserID, deviceID: c.DeviceID, limit: defaultTimelineLimit, fullState: q.Get("full_state") == "true"}
	if tok := q.Get("since"); tok != "" {
		p, ss, err := parseSyncToken(tok)
		if err != nil {
			return 0, nil, err
		}
		req.since, req.typingSince, req.presenceSince, req.hasSince = p, ss.typing, ss.presence, true
	}
	f, err := parseSyncFilter(q.Get("filter"))
	if err != nil {
		return 0, nil, err
	}
	if l := f.Room.Timeline.Limit; l != nil && *l > 0 {
		req.limit = min(*l, maxTimelineLimit)
	}
	req.leave = f.Room.IncludeLeave
	req.filter = f
	if f.lazyMembers() && (!req.hasSince || req.fullState) {
		s.lazyMembers().reset(req.userID, req.deviceID)
	}
	var timeout time.Duration
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return 0, nil, errInvalidParam("timeout must be a non-negative integer")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxSyncTimeout)
	}

	setPresence, err := parseSetPresence(q.Get("set_presence"))
	if err != nil {
		return 0, nil, err
	}
	s.presenceSynced(&req, setPresence)

	deadline := time.Now().Add(timeout)
	for {
		resp, rooms, to, err := s.computeSync(r.Context(), &req)
		if err != nil {
			return 0, nil, err
		}
		if !resp.empty() || req.fullState || !req.hasSince || time.Now().After(deadline) {
			return http.StatusOK, resp, nil
		}
		woke, cancel := s.syncer.Wait(req.userID, rooms, to)
		var typed <-chan struct{} // nil: never
		cancelTyping := func() {}
		if s.opts.Typing != nil {
			typed, cancelTyping = s.opts.Typing.Wait(rooms, req.typingTo)
		}
		presenced, cancelPresence := s.presenceWait(&req)
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-woke:
		case <-typed:
		case <-presenced:
		case <-timer.C:
		case <-r.Context().Done():
		}
		timer.Stop()
		cancel()
		cancelTyping()
		cancelPresence()
		if r.Context().Err() != nil {
			return http.StatusOK, resp, nil
		}
	}
}

// computeSync builds one response for (since, to], to being the store's
// safe position now; it also returns the user's rooms to wait on.
func (s *Server) computeSync(ctx context.Context, req *syncRequest) (*syncResponse, []string, persistence.StreamPos, error) {
	// The typing serial is read first: a change after it shows again in
	// the next sync rather than never.
	req.typingTo = 0
	if s.opts.Typing != nil {
		req.typingTo = s.opts.Typing.Serial()
	}
	req.presenceTo = 0
	if s.opts.Presence != nil {
		req.presenceTo = s.opts.Presence.Serial()
	}
	to, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	if req.since > to {
		to = req.since // a token from before a restart that lost nothing committed
	}
	resp := &syncResponse{
		NextBatch:        syncToken(to, req.typingTo, req.presenceTo),
		Rooms:            syncRooms{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{}, Leave: map[string]*leftRoom{}},
		Presence:         eventList[any]{Events: []any{}},
		AccountData:      eventList[any]{Events: []any{}},
		ToDevice:         eventList[any]{Events: []any{}},
		OneTimeKeysCount: map[string]int{},
	}
	resp.DeviceLists.Changed, resp.DeviceLists.Left = []string{}, []string{}
	ms, err := s.store.MembershipsForUser(ctx, req.userID)
	if err != nil {
		return nil, nil, 0, err
	}
	// Rooms the filter leaves out are not read, shown or waited on.
	ms = slices.DeleteFunc(ms, func(m persistence.Membership) bool { return !req.filter.Room.allowsRoom(m.RoomID) })
	var joined []string
	for _, m := range ms {
		if m.Membership == "join" {
			joined = append(joined, m.RoomID)
		}
	}
	streams, err := s.readStreamsFor(ctx, req, ms, to)
	if err != nil {
		return nil, nil, 0, err
	}
	typing := s.typingFor(req, joined)
	if resp.Presence.Events, err = s.presenceFor(ctx, req, ms); err != nil {
		return nil, nil, 0, err
	}
	resp.AccountData.Events = streams.global
	if err := s.syncDeviceStreams(ctx, req, to, resp); err != nil {
		return nil, nil, 0, err
	}
	// In an incremental sync, skip the rooms with nothing new in one query.
	active := map[persistence.RoomNID]bool{}
	for _, m := range ms {
		_, data := streams.perRoom[m.RoomID]
		_, receipts := streams.receipts[m.RoomID]
		_, typed := typing[m.RoomID]
		if data || receipts || typed {
			active[m.RoomNID] = true
		}
	}
	if req.since > 0 && !req.fullState {
		var nids []persistence.RoomNID
		for _, m := range ms {
			if m.Membership == "join" {
				nids = append(nids, m.RoomNID)
			}
		}
		if len(nids) > 0 {
			changed, err := s.store.RoomsWithEvents(ctx, nids, req.since, to)
			if err != nil {
				return nil, nil, 0, err
			}
			for _, n := range changed {
				active[n] = true
			}
		}
	}
	for _, m := range ms {
		if m.StreamPos > to {
			continue // committed after our bound: the next sync shows it
		}
		newSince := m.StreamPos > req.since
		switch m.Membership {
		case "join":
			if req.since > 0 && !req.fullState && !newSince && !active[m.RoomNID] {
				continue
			}
			jr, err := s.syncJoinedRoom(ctx, req, m, to, newSince)
			if err != nil {
				return nil, nil, 0, err
			}
			if jr != nil {
				if evs := streams.perRoom[m.RoomID]; evs != nil {
					jr.AccountData.Events = evs
				}
				eph := &req.filter.Room.Ephemeral
				ephOK := func(typ string) bool { return roomAllowed(eph.Rooms, eph.NotRooms, m.RoomID) && eph.allowsType(typ) }
				if rc := streams.receipts[m.RoomID]; rc != nil && ephOK("m.receipt") {
					jr.Ephemeral.Events = append(jr.Ephemeral.Events, rc)
				}
				if users, ok := typing[m.RoomID]; ok && ephOK("m.typing") {
					jr.Ephemeral.Events = append(jr.Ephemeral.Events, typingEvent(users))
				}
				if req.since > 0 && !req.fullState && !newSince && jr.empty() {
					continue // all that changed was filtered out
				}
				resp.Rooms.Join[m.RoomID] = jr
			}
		case "invite":
			if !newSince && !req.fullState {
				continue
			}
			ir, err := s.syncInvitedRoom(ctx, m)
			if err != nil {
				return nil, nil, 0, err
			}
			resp.Rooms.Invite[m.RoomID] = ir
		case "leave", "ban":
			if m.Forgotten || (!req.hasSince && !req.leave) || (!newSince && !req.fullState) {
				continue
			}
			lr, err := s.syncLeftRoom(ctx, req, m)
			if err != nil {
				return nil, nil, 0, err
			}
			if evs := streams.perRoom[m.RoomID]; evs != nil {
				lr.AccountData.Events = evs
			}
			resp.Rooms.Leave[m.RoomID] = lr
		}
	}
	return resp, joined, to, nil
}

// roomSection is the timeline and state of one room for (since, to].
// A full section (initial sync, new join, full_state) shows the state at
// the start of the timeline; an incremental one the state changes between
// since and the timeline when the timeline is limited. The filter's
// timeline part picks the timeline's events (limited when older matching
// events exist), its state part the state events; with lazy-loading the
// state's members are those of the timeline's senders (see lazyState).
func (s *Server) roomSection(ctx context.Context, req *syncRequest, roomID string, nid persistence.RoomNID, to persistence.StreamPos, full bool) (timeline, []*clientEvent, error) {
	from := req.since
	if full {
		from = 0
	}
	rf := &req.filter.Room
	evs, limited, start, err := s.timelineEvents(ctx, nid, from, to, req.limit, &rf.Timeline)
	if err != nil {
		return timeline{}, nil, err
	}
	tl := timeline{Limited: limited, PrevBatch: streamToken(start)}
	visible := evs
	if full {
		// A full section reaches back before the user's membership, where
		// history visibility decides; incremental ones are all visible.
		if visible, err = s.visibleEvents(ctx, req.userID, evs); err != nil {
			return timeline{}, nil, err
		}
	}
	if tl.Events, err = toClientEvents(visible, false); err != nil {
		return timeline{}, nil, err
	}
	if err := s.addPrevContent(ctx, visible, tl.Events); err != nil {
		return timeline{}, nil, err
	}
	if err := s.bundleRelations(ctx, req.userID, to, visible, tl.Events); err != nil {
		return timeline{}, nil, err
	}
	if err := s.addTransactionIDs(ctx, req, visible, tl.Events); err != nil {
		return timeline{}, nil, err
	}

	var state []persistence.StoredEvent
	switch {
	case full && len(evs) > 0:
		state, err = s.store.SnapshotEvents(ctx, evs[0].StateBefore)
	case full:
		state, err = s.store.CurrentState(ctx, nid)
	case tl.Limited:
		state, err = s.store.StateEventsBetween(ctx, nid, req.since, start)
		state = latestPerTuple(state)
	}
	if err != nil {
		return timeline{}, nil, err
	}
	state = slices.DeleteFunc(state, func(ev persistence.StoredEvent) bool { return !rf.State.allowsEvent(&ev) })
	if req.filter.lazyMembers() {
		if state, err = s.lazyState(ctx, req, roomID, state, evs, visible, full); err != nil {
			return timeline{}, nil, err
		}
	}
	stateEvents, err := toClientEvents(state, false)
	return tl, stateEvents, err
}

// maxFilterScan bounds how many events one filtered timeline or /messages
// page reads looking for matches; past it the answer is cut there (limited,
// with a token to go on from).
const maxFilterScan = 2000

// timelineEvents reads up to limit events of (from, to] that pass f, oldest
// first. limited says whether older matching events may exist; start is
// the position just before the first event (to when none), where
// pagination backwards goes on.
func (s *Server) timelineEvents(ctx context.Context, nid persistence.RoomNID, from, to persistence.StreamPos, limit int, f *roomEventFilter) ([]persistence.StoredEvent, bool, persistence.StreamPos, error) {
	batch := limit + 1
	if f.selective() {
		batch = max(batch, 100)
	}
	var out []persistence.StoredEvent
	limited := false
	cursor, scanned := to, 0
	for !limited {
		evs, err := s.store.RoomEvents(ctx, nid, from, cursor, batch, false)
		if err != nil {
			return nil, false, 0, err
		}
		for i := range evs {
			if !f.allowsEvent(&evs[i]) {
				cursor = evs[i].StreamPos - 1
				continue
			}
			if len(out) == limit {
				limited = true
				break
			}
			out = append(out, evs[i])
			cursor = evs[i].StreamPos - 1
		}
		scanned += len(evs)
		if len(evs) < batch {
			break
		}
		if scanned >= maxFilterScan && !limited {
			limited = true // matching events may lie further back
			if len(out) == 0 {
				break
			}
			cursor = out[len(out)-1].StreamPos - 1
		}
	}
	// Newest first from storage: reverse into chronological order.
	slices.Reverse(out)
	start := to
	switch {
	case len(out) > 0:
		start = out[0].StreamPos - 1
	case limited:
		start = cursor
	}
	return out, limited, start, nil
}

// addTransactionIDs echoes unsigned.transaction_id on the events the
// syncing device sent, so that its client can match them to local echoes.
func (s *Server) addTransactionIDs(ctx context.Context, req *syncRequest, stored []persistence.StoredEvent, out []*clientEvent) error {
	for i := range stored {
		if stored[i].Sender != req.userID {
			continue
		}
		txn, err := s.store.TxnIDForEvent(ctx, stored[i].EventID, req.userID, req.deviceID)
		if errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if out[i].Unsigned == nil {
			out[i].Unsigned = map[string]any{}
		}
		out[i].Unsigned["transaction_id"] = txn
	}
	return nil
}

// visibleEvents filters one room's events by history visibility.
func (s *Server) visibleEvents(ctx context.Context, userID string, evs []persistence.StoredEvent) ([]persistence.StoredEvent, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	a, err := s.accessFor(ctx, evs[0].RoomID, userID)
	if err != nil {
		return nil, err
	}
	vc := s.newVisibilityChecker(a)
	out := evs[:0:0]
	for i := range evs {
		ok, err := vc.canSee(ctx, &evs[i])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, evs[i])
		}
	}
	return out, nil
}

// latestPerTuple keeps the newest event of each (type, state key); events
// come oldest first.
func latestPerTuple(evs []persistence.StoredEvent) []persistence.StoredEvent {
	type key struct{ t, k string }
	last := map[key]int{}
	for i, ev := range evs {
		last[key{ev.Type, *ev.StateKey}] = i
	}
	out := make([]persistence.StoredEvent, 0, len(last))
	for i, ev := range evs {
		if last[key{ev.Type, *ev.StateKey}] == i {
			out = append(out, ev)
		}
	}
	return out
}

// empty reports whether a joined room's entry carries nothing.
func (jr *joinedRoom) empty() bool {
	return len(jr.Timeline.Events) == 0 && len(jr.State.Events) == 0 && len(jr.Ephemeral.Events) == 0 && len(jr.AccountData.Events) == 0
}

func (s *Server) syncJoinedRoom(ctx context.Context, req *syncRequest, m persistence.Membership, to persistence.StreamPos, newSince bool) (*joinedRoom, error) {
	full := req.since == 0 || req.fullState || newSince
	tl, state, err := s.roomSection(ctx, req, m.RoomID, m.RoomNID, to, full)
	if err != nil {
		return nil, err
	}
	unread, err := s.unreadCounts(ctx, req.userID, m, to)
	if err != nil {
		return nil, err
	}
	return &joinedRoom{
		Timeline:            tl,
		State:               eventList[*clientEvent]{Events: state},
		Ephemeral:           eventList[any]{Events: []any{}},
		AccountData:         eventList[any]{Events: []any{}},
		UnreadNotifications: unread,
		Summary:             map[string]any{},
	}, nil
}

// syncLeftRoom shows a departed room up to the departure.
func (s *Server) syncLeftRoom(ctx context.Context, req *syncRequest, m persistence.Membership) (*leftRoom, error) {
	tl, state, err := s.roomSection(ctx, req, m.RoomID, m.RoomNID, m.StreamPos, req.since == 0 || req.fullState)
	if err != nil {
		return nil, err
	}
	return &leftRoom{Timeline: tl, State: eventList[*clientEvent]{Events: state}, AccountData: eventList[any]{Events: []any{}}}, nil
}

// inviteStateTypes is the stripped state the spec recommends with invites.
var inviteStateTypes = map[string]bool{
	spec.MRoomCreate: true, spec.MRoomJoinRules: true, spec.MRoomName: true,
	"m.room.avatar": true, spec.MRoomCanonicalAlias: true, "m.room.encryption": true, spec.MRoomTopic: true,
}

func (s *Server) syncInvitedRoom(ctx context.Context, m persistence.Membership) (*invitedRoom, error) {
	invite, err := s.store.EventByID(ctx, m.EventID)
	if err != nil {
		return nil, err
	}
	state, err := s.store.SnapshotEvents(ctx, invite.StateBefore)
	if err != nil {
		return nil, err
	}
	out := []*strippedEvent{}
	// An invite from another server carries the room's state as that
	// server stripped it (this server has none of the room's state).
	var remote struct {
		Unsigned struct {
			InviteRoomState []*strippedEvent `json:"invite_room_state"`
		} `json:"unsigned"`
	}
	if json.Unmarshal(invite.JSON, &remote) == nil {
		for _, st := range remote.Unsigned.InviteRoomState {
			if st != nil && st.Type != "" {
				out = append(out, st)
			}
		}
	}
	for i := range state {
		ev := &state[i]
		if !inviteStateTypes[ev.Type] && !(ev.Type == spec.MRoomMember && *ev.StateKey == invite.Sender) {
			continue
		}
		se, err := toStrippedEvent(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, se)
	}
	se, err := toStrippedEvent(invite)
	if err != nil {
		return nil, err
	}
	return &invitedRoom{InviteState: eventList[*strippedEvent]{Events: append(out, se)}}, nil
}
