package rooms

import (
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/soma-chat/soma/actors/messages"
)

// inspect answers the admin API's InspectRoom from what the actor holds.
// Being looked at does not count as activity: an inspected room still
// passivates when idle.
func (a *Actor) inspect() *messages.RoomInspection {
	out := &messages.RoomInspection{RoomId: a.roomID, PendingSends: int32(len(a.pending))}
	r := a.room
	if r == nil {
		return out
	}
	out.Loaded = true
	out.RoomVersion = string(r.Version.Version())
	out.Epoch, out.Depth = r.Epoch, r.Depth
	out.ForwardExtremities = slices.Clone(r.Extremities)
	out.StateEvents = int32(len(r.State))
	out.JoinedMembers = int32(r.Members.Joined())
	out.Servers = r.Members.Servers()
	slices.Sort(out.Servers)
	return out
}

// injectFault panics as a bug in event processing would, after committing
// the batch being gathered so that no send is caught in it. respond
// answers the fault with M_UNKNOWN and the supervisor restarts the actor.
func (a *Actor) injectFault(ctx actor.Context, msg *messages.InjectFault) {
	a.flush(ctx)
	a.respond(ctx, func() proto.Message { panic(fmt.Sprintf("injected fault: %s", msg.Reason)) },
		func(e *messages.Error) proto.Message { return &messages.FaultReply{Error: e} })
}
