// flow.mjs drives a running Soma with the real matrix-js-sdk, as a new user's
// client would: register, sync, create a room, invite, join, chat both ways,
// change topic and display name, read history, leave.
//
//   node flow.mjs http://127.0.0.1:8008
//
// Run by cmd/soma/jssdk_test.go against a fresh server; harness.mjs has the
// step runner, the HTTP trace and what a failure prints.

import * as sdk from "matrix-js-sdk";

import {
    ACCOUNT_TIMEOUT_MS,
    baseUrl,
    bounded,
    clientFor,
    expect,
    password,
    record,
    redact,
    register,
    runFlow,
    safeJSON,
    sleep,
    trace,
    tracedFetch,
    waitPrepared,
    waitUntil,
} from "./harness.mjs";

const BOB_TIMELINE_LIMIT = 3;
const IDLE_MS = 1500;

// ---- the flow

const ctx = {};
const steps = [
    [
        "register alice and bob (UIA m.login.dummy), alice logs in",
        async () => {
            const aliceReg = await register("alice");
            const bobReg = await register("bob");
            // Alice's running client uses a fresh login, as a returning user's would.
            const anon = sdk.createClient({ baseUrl, fetchFn: tracedFetch("alice") });
            const flows = await bounded("GET /login", anon.loginFlows());
            expect(
                flows.flows?.some((f) => f.type === "m.login.password"),
                `GET /login offers no m.login.password: ${safeJSON(flows)}`,
            );
            const login = await bounded(
                "login alice",
                anon.loginRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: "alice" },
                    password: password("alice"),
                }),
                ACCOUNT_TIMEOUT_MS,
            );
            expect(login.user_id === aliceReg.user_id, `login user_id ${login.user_id}, want ${aliceReg.user_id}`);
            expect(login.device_id !== aliceReg.device_id, "login reused the registration's device");
            ctx.aliceId = login.user_id;
            ctx.bobId = bobReg.user_id;
            ctx.alice = clientFor("alice", login);
            ctx.bob = clientFor("bob", bobReg);
            const who = await bounded("whoami", ctx.alice.whoami());
            expect(who.user_id === ctx.aliceId, `whoami says ${who.user_id}, want ${ctx.aliceId}`);
        },
    ],
    [
        "both clients start and finish their initial sync",
        async () => {
            ctx.aliceSeen = record(ctx.alice);
            ctx.bobSeen = record(ctx.bob);
            await ctx.alice.startClient({ initialSyncLimit: 20 });
            // Bob's timeline limit is small, so that the sync in which he
            // joins has a limited timeline with a prev_batch, and scrollback
            // (step 6) really pages through /messages to the room's start.
            const bobFilter = new sdk.Filter(ctx.bobId);
            bobFilter.setTimelineLimit(BOB_TIMELINE_LIMIT);
            await ctx.bob.startClient({ filter: bobFilter, initialSyncLimit: BOB_TIMELINE_LIMIT });
            for (const [name, seen] of [
                ["alice", ctx.aliceSeen],
                ["bob", ctx.bobSeen],
            ]) {
                await waitPrepared(name, seen);
            }
            for (const name of ["alice", "bob"]) {
                const filter = trace.find((e) => e.who === name && e.method === "POST" && /\/user\/[^/]+\/filter$/.test(e.path));
                expect(filter?.status === 200, `${name}'s filter upload: ${filter ? filter.status : "never sent"}`);
            }
            // The SDK then long-polls with the token the initial sync returned:
            // with nothing happening, each client has one /sync waiting, not a
            // stream of answered ones.
            const syncs = (name) => trace.filter((e) => e.who === name && e.path.includes("/sync?") && e.path.includes("since="));
            await waitUntil("both clients to send an incremental /sync (since=…)", () => syncs("alice").length && syncs("bob").length);
            const before = { alice: syncs("alice").length, bob: syncs("bob").length };
            await sleep(IDLE_MS);
            for (const name of ["alice", "bob"]) {
                const sent = syncs(name).slice(before[name]);
                const last = sent.findLast((e) => e.took !== undefined);
                expect(
                    sent.length <= 1,
                    `${name}'s client sent ${sent.length} incremental /sync requests in ${IDLE_MS}ms with nothing happening: ` +
                        `GET ${redact(last?.path)} was answered after ${last?.took}ms instead of long-polling`,
                );
            }
        },
    ],
    [
        "alice creates a private room and invites bob; bob sees the invite through sync and joins",
        async () => {
            const { alice, bob, aliceId, bobId } = ctx;
            const { room_id: roomId } = await bounded(
                "createRoom",
                alice.createRoom({ preset: sdk.Preset.PrivateChat, name: "Tea", topic: "Brewing" }),
            );
            ctx.roomId = roomId;
            await waitUntil("alice's client to see herself joined to the new room", () => alice.getRoom(roomId)?.getMyMembership() === "join");
            const aliceRoom = alice.getRoom(roomId);
            expect(aliceRoom.name === "Tea", `alice's room name is ${JSON.stringify(aliceRoom.name)}, want "Tea"`);
            await bounded("invite bob", alice.invite(roomId, bobId));

            await waitUntil("bob's client to get a RoomMember.membership event for his invite", () =>
                ctx.bobSeen.membership.some((m) => m.roomId === roomId && m.userId === bobId && m.membership === "invite"),
            );
            const invited = await waitUntil("bob's client to hold the room with membership invite", () => {
                const r = bob.getRoom(roomId);
                return r?.getMyMembership() === "invite" && r;
            });
            expect(invited.name === "Tea", `bob sees the invited room's name as ${JSON.stringify(invited.name)}, want "Tea" (from invite_state)`);
            const inviter = invited.getMember(bobId)?.events.member?.getSender();
            expect(inviter === aliceId, `bob's invite was sent by ${inviter}, want ${aliceId}`);

            await bounded("bob joins", bob.joinRoom(roomId));
            await waitUntil("bob's client to see himself joined (through sync)", () => bob.getRoom(roomId)?.getMyMembership() === "join");
            await waitUntil("alice's client to see bob joined", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join");
            const bobRoom = bob.getRoom(roomId);
            expect(bobRoom.getJoinedMemberCount() === 2, `bob's room has ${bobRoom.getJoinedMemberCount()} joined members, want 2`);
            const topic = bobRoom.currentState.getStateEvents("m.room.topic", "")?.getContent().topic;
            expect(topic === "Brewing", `bob's room topic after joining is ${JSON.stringify(topic)}, want "Brewing"`);
        },
    ],
    [
        "alice and bob exchange messages through sync",
        async () => {
            const { alice, bob, aliceId, bobId, roomId } = ctx;
            const sent = await bounded("alice sends a message", alice.sendTextMessage(roomId, "hello bob"));
            ctx.helloId = sent.event_id;
            const got = await waitUntil("bob's client to receive alice's message as a live Room.timeline event", () =>
                ctx.bobSeen.timeline.find((t) => t.roomId === roomId && t.ev.getId() === sent.event_id),
            );
            expect(got.live, "alice's message reached bob's timeline, but not as a live event");
            expect(got.ev.getSender() === aliceId, `message sender is ${got.ev.getSender()}, want ${aliceId}`);
            expect(got.ev.getContent().body === "hello bob", `message body is ${JSON.stringify(got.ev.getContent().body)}`);

            const reply = await bounded("bob replies", bob.sendTextMessage(roomId, "hi alice"));
            expect(reply.event_id !== sent.event_id, "bob's reply got the same event ID as alice's message");
            ctx.replyId = reply.event_id;
            const back = await waitUntil("alice's client to receive bob's reply as a Room.timeline event", () =>
                ctx.aliceSeen.timeline.find((t) => t.roomId === roomId && t.ev.getId() === reply.event_id),
            );
            expect(back.ev.getSender() === bobId, `reply sender is ${back.ev.getSender()}, want ${bobId}`);
            expect(back.ev.getContent().body === "hi alice", `reply body is ${JSON.stringify(back.ev.getContent().body)}`);
            // Both timelines agree on the order.
            const order = (c) =>
                c
                    .getRoom(roomId)
                    .getLiveTimeline()
                    .getEvents()
                    .filter((e) => e.getType() === "m.room.message")
                    .map((e) => e.getContent().body);
            await waitUntil("bob's own timeline to hold both messages in order", () => order(bob).join("|") === "hello bob|hi alice");
            expect(order(alice).join("|") === "hello bob|hi alice", `alice's timeline: ${JSON.stringify(order(alice))}`);
        },
    ],
    [
        "alice sets the topic and her display name; bob's client sees both",
        async () => {
            const { alice, bob, aliceId, roomId } = ctx;
            await bounded("setRoomTopic", alice.setRoomTopic(roomId, "Oolong"));
            await waitUntil("bob's room state to carry the topic Oolong", () =>
                bob.getRoom(roomId)?.currentState.getStateEvents("m.room.topic", "")?.getContent().topic === "Oolong",
            );
            await bounded("setDisplayName", alice.setDisplayName("Alice A."));
            const profile = await bounded("getProfileInfo", bob.getProfileInfo(aliceId));
            expect(profile.displayname === "Alice A.", `bob reads alice's profile display name as ${JSON.stringify(profile.displayname)}`);
            await waitUntil("bob's client to get a RoomMember.name event naming alice Alice A.", () =>
                ctx.bobSeen.names.some((n) => n.roomId === roomId && n.userId === aliceId && n.name === "Alice A."),
            );
            expect(bob.getRoom(roomId).getMember(aliceId)?.name === "Alice A.", "bob's member list does not name alice Alice A.");
        },
    ],
    [
        "bob reads history with /messages (createMessagesRequest and scrollback)",
        async () => {
            const { bob, aliceId, roomId } = ctx;
            const page = await bounded("createMessagesRequest", bob.createMessagesRequest(roomId, null, 50, sdk.Direction.Backward));
            expect(Array.isArray(page.chunk), `/messages has no chunk: ${safeJSON(page)}`);
            const hello = page.chunk.find((e) => e.event_id === ctx.helloId);
            expect(hello, `/messages dir=b lacks alice's message ${ctx.helloId}; chunk types: ${page.chunk.map((e) => e.type).join(",")}`);
            expect(hello.sender === aliceId && hello.content?.body === "hello bob", `/messages has alice's message as ${safeJSON(hello)}`);
            const bodies = page.chunk.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
            expect(bodies.join("|") === "hi alice|hello bob", `/messages dir=b messages are ${JSON.stringify(bodies)}, want newest first`);

            // scrollback pages back from the sync's prev_batch until the start of the room.
            const room = bob.getRoom(roomId);
            expect(
                room.oldState.paginationToken,
                `bob's room has no pagination token, yet its timeline (limit ${BOB_TIMELINE_LIMIT}) cannot hold the room's history: ` +
                    "the sync that brought the room gave no prev_batch",
            );
            const pagesBefore = trace.filter((e) => e.who === "bob" && e.path.includes("/messages?") && e.path.includes("from=")).length;
            for (let i = 0; room.oldState.paginationToken !== null; i++) {
                expect(i < 20, `scrollback did not reach the start of the room after ${i} pages`);
                await bounded("scrollback", bob.scrollback(room, 5));
            }
            const pages = trace.filter((e) => e.who === "bob" && e.path.includes("/messages?") && e.path.includes("from=")).length - pagesBefore;
            expect(pages >= 1, "scrollback reached the start without a /messages request");
            const events = room.getLiveTimeline().getEvents();
            expect(events[0]?.getType() === "m.room.create", `after scrollback the timeline starts with ${events[0]?.getType()}, want m.room.create`);
            const ids = events.map((e) => e.getId());
            expect(ids.filter((id) => id === ctx.helloId).length === 1, "after scrollback alice's message is not in bob's timeline exactly once");
            expect(new Set(ids).size === ids.length, "scrollback left duplicate events in bob's timeline");
        },
    ],
    [
        "bob leaves; alice's client sees his membership become leave",
        async () => {
            const { alice, bob, bobId, roomId } = ctx;
            await bounded("bob leaves", bob.leave(roomId));
            await waitUntil("alice's client to get a RoomMember.membership event with bob leaving", () =>
                ctx.aliceSeen.membership.some((m) => m.roomId === roomId && m.userId === bobId && m.membership === "leave"),
            );
            expect(alice.getRoom(roomId).getMember(bobId)?.membership === "leave", "alice's member list does not show bob as left");
            expect(alice.getRoom(roomId).getJoinedMemberCount() === 1, `alice's room has ${alice.getRoom(roomId).getJoinedMemberCount()} joined members, want 1`);
            await waitUntil("bob's client to see the room as left", () => bob.getRoom(roomId)?.getMyMembership() === "leave");
        },
    ],
];

await runFlow(steps, () => [ctx.alice, ctx.bob]);
