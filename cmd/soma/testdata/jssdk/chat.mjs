// chat.mjs drives a running Soma with the real matrix-js-sdk and its Rust
// crypto (@matrix-org/matrix-sdk-crypto-wasm), as two people on their own
// devices would use a chat app: end-to-end encryption with cross-signing,
// secret storage and key backup (restored on a new device, which then reads
// the encrypted history); an encrypted room with messages both ways;
// SAS verification of each other in the room, and of the new device over
// to-device messages, which then receives the cross-signing keys; typing,
// read receipts and unread counts;
// edits, reactions and redactions; an image uploaded and downloaded; a public
// room found in the directory and joined through its alias; server-side
// search of the history.
//
//   node chat.mjs http://127.0.0.1:8008
//
// Run by cmd/soma/jssdk_test.go against a fresh server; harness.mjs has the
// step runner, the HTTP trace and what a failure prints.

import { deflateSync } from "node:zlib";

import * as sdk from "matrix-js-sdk";
import { CryptoEvent, VerificationPhase, VerifierEvent } from "matrix-js-sdk/lib/crypto-api/index.js";

import {
    ACCOUNT_TIMEOUT_MS,
    STEP_TIMEOUT_MS,
    baseUrl,
    bounded,
    clientFor,
    expect,
    password,
    record,
    register,
    runFlow,
    safeJSON,
    t0,
    trace,
    tracedFetch,
    waitPrepared,
    waitUntil,
    waitUntilAsync,
} from "./harness.mjs";

// The Rust crypto backs up room keys after a random delay of up to 10 s
// (rust-crypto/backup.ts backupKeysLoop).
const BACKUP_TIMEOUT_MS = 2 * STEP_TIMEOUT_MS;
// Initialising the wasm crypto and the first key uploads take a while under
// the race detector's load.
const CRYPTO_TIMEOUT_MS = 3 * STEP_TIMEOUT_MS;
const IDLE_MS = 1500;

// ---- an app's parts: secret storage keys held in memory, UIA by password

// cryptoCallbacks keep the secret storage key an app would ask its user
// for; the SDK caches a new key through cacheSecretStorageKey and asks for
// it back through getSecretStorageKey when it stores a secret.
function cryptoCallbacks() {
    const keys = new Map();
    return {
        cacheSecretStorageKey: (keyId, keyInfo, key) => keys.set(keyId, key),
        getSecretStorageKey: async ({ keys: wanted }) => {
            const keyId = Object.keys(wanted).find((id) => keys.has(id));
            return keyId ? [keyId, keys.get(keyId)] : null;
        },
    };
}

// passwordUIA is the UIAuthCallback an app passes to bootstrapCrossSigning:
// it sends the request, and when the server asks for user-interactive auth
// (401 with flows), answers with m.login.password. uia records what happened.
function passwordUIA(user, uia) {
    return async (makeRequest) => {
        try {
            await makeRequest(null);
            uia.push("no auth asked");
        } catch (e) {
            if (!(e instanceof sdk.MatrixError) || e.httpStatus !== 401 || !e.data?.flows) throw e;
            const stages = e.data.flows.flatMap((f) => f.stages || []);
            expect(stages.includes("m.login.password"), `cross-signing upload's UIA offers no m.login.password: ${safeJSON(e.data)}`);
            expect(e.data.session, `cross-signing upload's 401 has no session: ${safeJSON(e.data)}`);
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user },
                password: password(user),
                session: e.data.session,
            });
            uia.push("m.login.password");
        }
    };
}

// ---- a small real PNG: an 8×8 RGB gradient, built by hand.

function crc32(buf) {
    let c = ~0;
    for (const b of buf) {
        c ^= b;
        for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
}
function pngChunk(type, data) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const typed = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([len, typed, crc]);
}
function makePNG(w, h) {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(w, 0);
    ihdr.writeUInt32BE(h, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // truecolour RGB
    const rows = [];
    for (let y = 0; y < h; y++) {
        const row = Buffer.alloc(1 + 3 * w); // filter byte 0, then pixels
        for (let x = 0; x < w; x++) row.set([(x * 255) / (w - 1), (y * 255) / (h - 1), 128], 1 + 3 * x);
        rows.push(row);
    }
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk("IHDR", ihdr),
        pngChunk("IDAT", deflateSync(Buffer.concat(rows))),
        pngChunk("IEND", Buffer.alloc(0)),
    ]);
}

// ---- helpers for the steps

// decrypted waits until a client holds the event, decrypted: the server
// only ever carried m.room.encrypted.
async function decrypted(name, client, roomId, eventId) {
    const ev = await waitUntil(`${name}'s client to hold event ${eventId} decrypted`, () => {
        const e = client.getRoom(roomId)?.findEventById(eventId);
        return e && !e.isBeingDecrypted() && !e.isDecryptionFailure() && e.getType() !== "m.room.encrypted" && e;
    });
    expect(ev.isEncrypted(), `${name}'s copy of ${eventId} was not encrypted on the wire (wire type ${ev.getWireType()})`);
    return ev;
}

// lastLiveEvent is the newest event of the room the server has accepted (a
// read receipt cannot point at a local echo).
function lastLiveEvent(client, roomId) {
    return client
        .getRoom(roomId)
        .getLiveTimeline()
        .getEvents()
        .findLast((e) => !e.status && e.getId()?.startsWith("$"));
}

// sas waits for a verifier's short authentication string.
function sasOf(verifier) {
    return new Promise((resolve) => {
        const shown = verifier.getShowSasCallbacks();
        if (shown) resolve(shown);
        else verifier.once(VerifierEvent.ShowSas, resolve);
    });
}

// sasVerification drives an interactive SAS verification as the two users
// of the apps would: the initiator's client sends the request; the
// responder's client is told of it (matches picks it out) and accepts; the
// initiator starts SAS; both compare the emoji and confirm.
async function sasVerification([initName, initiator, request], [respName, responder, matches]) {
    const incoming = [];
    const listener = (req) => incoming.push(req);
    responder.on(CryptoEvent.VerificationRequestReceived, listener);
    try {
        const initReq = await bounded(`${initName}: request verification`, request());
        // The request passes the responder's crypto machine, as other crypto
        // work does, and waits as long.
        const respReq = await waitUntil(`${respName}'s client to receive ${initName}'s verification request`, () => incoming.find(matches), CRYPTO_TIMEOUT_MS);
        expect(!respReq.initiatedByMe && respReq.phase === VerificationPhase.Requested, `${respName}'s request: initiatedByMe ${respReq.initiatedByMe}, phase ${respReq.phase}`);
        await bounded(`${respName} accepts the request`, respReq.accept());
        await waitUntil(() => `${initName}'s request to become ready (phase ${initReq.phase})`, () => initReq.phase === VerificationPhase.Ready);
        expect(initReq.otherPartySupportsMethod("m.sas.v1"), `${respName}'s client does not offer SAS`);
        const initVerifier = await bounded(`${initName} starts SAS`, initReq.startVerification("m.sas.v1"));
        const respVerifier = await waitUntil(() => `${respName}'s request to get a verifier (phase ${respReq.phase})`, () => respReq.verifier);
        const done = [initVerifier, respVerifier].map((v) => {
            const p = v.verify();
            p.catch(() => {}); // awaited below; a rejection must not crash node first
            return p;
        });
        const [initSas, respSas] = await bounded("both sides to show the SAS", Promise.all([sasOf(initVerifier), sasOf(respVerifier)]));
        const emoji = (s) => s.sas.emoji?.map(([e, n]) => `${e} ${n}`).join(", ");
        expect(emoji(initSas) && emoji(initSas) === emoji(respSas), `the SAS differ: ${initName} ${emoji(initSas)}, ${respName} ${emoji(respSas)}`);
        expect(safeJSON(initSas.sas.decimal) === safeJSON(respSas.sas.decimal), `the decimal SAS differ: ${initSas.sas.decimal} vs ${respSas.sas.decimal}`);
        await bounded("both confirm the SAS", Promise.all([initSas.confirm(), respSas.confirm()]));
        await bounded("both verifications to finish", Promise.all(done));
        await waitUntil(() => `both requests to be done (${initName} ${initReq.phase}, ${respName} ${respReq.phase})`, () =>
            initReq.phase === VerificationPhase.Done && respReq.phase === VerificationPhase.Done,
        );
    } finally {
        responder.off(CryptoEvent.VerificationRequestReceived, listener);
    }
}

// ownDeviceCrossSigned waits until a client sees its own device signed by
// its self-signing key, which it learns by /keys/query after the
// device-list change in /sync.
async function ownDeviceCrossSigned(name) {
    const crypto = ctx[name].getCrypto();
    await waitUntilAsync(`${name}'s own device to be cross-signing verified`, async () =>
        (await crypto.getDeviceVerificationStatus(ctx[`${name}Id`], ctx[`${name}Device`]))?.crossSigningVerified,
    );
}

// keysSettled waits until a client has fetched every change to its keys:
// no /keys/query under way, and its /sync long-polling (unanswered for
// IDLE_MS) with nothing new. The Rust crypto drops its private
// cross-signing keys when a /keys/query answered with the old public keys
// is handled after a reset, so a reset must not overlap a query the
// previous keys' upload set off.
async function keysSettled(name) {
    await waitUntil(`${name}'s client to settle (no /keys/query under way, /sync idle for ${IDLE_MS}ms)`, () => {
        const mine = trace.filter((e) => e.who === name);
        const lastSync = mine.findLast((e) => e.path.includes("/sync?"));
        return (
            !mine.some((e) => e.path.endsWith("/keys/query") && e.status === "pending") &&
            lastSync?.status === "pending" &&
            Date.now() - t0 - lastSync.ms >= IDLE_MS
        );
    });
}

// ---- the flow

const ctx = {};
const names = ["alice", "bob"];
const steps = [
    [
        "alice and bob register, each on their own device, and start clients with Rust crypto",
        async () => {
            for (const name of names) {
                const reg = await register(name);
                // Each user's secret storage key is what they would type in
                // on another device: the callbacks are theirs, not the device's.
                ctx[`${name}Callbacks`] = cryptoCallbacks();
                const client = clientFor(name, reg, { cryptoCallbacks: ctx[`${name}Callbacks`] });
                ctx[name] = client;
                ctx[`${name}Id`] = reg.user_id;
                ctx[`${name}Device`] = reg.device_id;
                ctx[`${name}Seen`] = record(client);
                await bounded(`${name}: initRustCrypto (in-memory store)`, client.initRustCrypto({ useIndexedDB: false }), CRYPTO_TIMEOUT_MS);
                const typing = (ctx[`${name}Typing`] = []);
                client.on(sdk.RoomMemberEvent.Typing, (ev, member) => typing.push({ roomId: member.roomId, userId: member.userId, typing: member.typing }));
                await client.startClient({ initialSyncLimit: 20 });
            }
            for (const name of names) await waitPrepared(name, ctx[`${name}Seen`]);
        },
    ],
    [
        "each bootstraps cross-signing; resetting it asks for UIA m.login.password",
        async () => {
            for (const name of names) {
                const crypto = ctx[name].getCrypto();
                const uia = [];
                await bounded(`${name}: bootstrapCrossSigning`, crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUIA(name, uia) }), CRYPTO_TIMEOUT_MS);
                expect(await crypto.isCrossSigningReady(), `${name}'s cross-signing is not ready after bootstrapCrossSigning`);
                const first = await crypto.getCrossSigningKeyId();
                await ownDeviceCrossSigned(name);
                await keysSettled(name);
                // A reset replaces keys the server already has: only the
                // account's password may do that.
                await bounded(
                    `${name}: bootstrapCrossSigning({ setupNewCrossSigning: true })`,
                    crypto.bootstrapCrossSigning({ setupNewCrossSigning: true, authUploadDeviceSigningKeys: passwordUIA(name, uia) }),
                    CRYPTO_TIMEOUT_MS,
                );
                expect(uia.at(-1) === "m.login.password", `${name}'s cross-signing reset went through without UIA (${uia.join(", ")})`);
                // getCrossSigningKeyId answers once the client's view of its
                // own identity (from /keys/query) matches the new private key.
                let second;
                await waitUntilAsync(
                    () => `${name}'s master key to change on reset (${first} → ${second})`,
                    async () => (second = await crypto.getCrossSigningKeyId()) && second !== first,
                );
                ctx[`${name}Master`] = second;
                const status = await crypto.getCrossSigningStatus();
                expect(
                    status.publicKeysOnDevice && status.privateKeysCachedLocally.masterKey && status.privateKeysCachedLocally.selfSigningKey && status.privateKeysCachedLocally.userSigningKey,
                    `${name}'s cross-signing status: ${safeJSON(status)}`,
                );
                await ownDeviceCrossSigned(name);
            }
            // Each sees the other's new master key through /keys/query.
            for (const [me, other] of [names, [...names].reverse()]) {
                const res = await bounded(
                    `${me}: POST /keys/query for ${other}`,
                    ctx[me].http.authedRequest(sdk.Method.Post, "/keys/query", undefined, { device_keys: { [ctx[`${other}Id`]]: [] } }),
                );
                const master = res.master_keys?.[ctx[`${other}Id`]];
                expect(
                    master && Object.values(master.keys).includes(ctx[`${other}Master`]),
                    `${me}'s /keys/query has ${other}'s master key as ${safeJSON(master)}, want ${ctx[`${other}Master`]}`,
                );
                expect(res.self_signing_keys?.[ctx[`${other}Id`]], `${me}'s /keys/query lacks ${other}'s self-signing key: ${safeJSON(res)}`);
            }
        },
    ],
    [
        "each sets up secret storage and a new key backup",
        async () => {
            for (const name of names) {
                const crypto = ctx[name].getCrypto();
                await bounded(
                    `${name}: bootstrapSecretStorage({ setupNewKeyBackup: true })`,
                    crypto.bootstrapSecretStorage({
                        createSecretStorageKey: () => crypto.createRecoveryKeyFromPassphrase(),
                        setupNewKeyBackup: true,
                    }),
                    CRYPTO_TIMEOUT_MS,
                );
                expect(await crypto.isSecretStorageReady(), `${name}'s secret storage is not ready after bootstrapSecretStorage`);
                // getKeyBackupInfo may answer from before the reset; an app
                // re-checks.
                const check = await bounded(`${name}: checkKeyBackupAndEnable`, crypto.checkKeyBackupAndEnable());
                const info = check?.backupInfo;
                expect(info?.version && info.algorithm === "m.megolm_backup.v1.curve25519-aes-sha2", `${name}'s key backup on the server: ${safeJSON(check)}`);
                expect(check.trustInfo.trusted && check.trustInfo.matchesDecryptionKey, `${name}'s own key backup is not trusted: ${safeJSON(check.trustInfo)}`);
                const active = await waitUntilAsync(`${name}'s key backup to become active`, () => crypto.getActiveSessionBackupVersion());
                expect(active === info.version, `${name}'s active backup is ${active}, the server's ${info.version}`);
                ctx[`${name}Backup`] = info.version;
            }
        },
    ],
    [
        "alice creates an encrypted room and invites bob; bob joins",
        async () => {
            const { alice, bob, bobId } = ctx;
            const { room_id: roomId } = await bounded(
                "createRoom with m.room.encryption",
                alice.createRoom({
                    preset: sdk.Preset.TrustedPrivateChat,
                    name: "Secrets",
                    invite: [bobId],
                    is_direct: true,
                    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
                }),
            );
            ctx.roomId = roomId;
            await waitUntil("bob's client to hold the invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
            await bounded("bob joins", bob.joinRoom(roomId));
            for (const name of names) {
                await waitUntil(`${name}'s client to see both joined`, () => ctx[name].getRoom(roomId)?.getJoinedMemberCount() === 2);
                expect(ctx[name].getRoom(roomId).hasEncryptionStateEvent(), `${name}'s room has no m.room.encryption state`);
                expect(await ctx[name].getCrypto().isEncryptionEnabledInRoom(roomId), `${name}'s crypto does not treat the room as encrypted`);
            }
            // Each client tracks the other's devices now that they share a
            // room, and has the keys of the other's device.
            for (const [me, other] of [names, [...names].reverse()]) {
                const otherId = ctx[`${other}Id`];
                await waitUntilAsync(`${me}'s client to have the keys of ${other}'s device`, async () => {
                    const dev = (await ctx[me].getCrypto().getUserDeviceInfo([otherId])).get(otherId)?.get(ctx[`${other}Device`]);
                    return dev?.getIdentityKey() && dev.getFingerprint();
                });
            }
        },
    ],
    [
        "alice and bob exchange encrypted messages; each client decrypts the other's",
        async () => {
            const { alice, bob, aliceId, bobId, roomId } = ctx;
            const sent = await bounded("alice sends an encrypted message", alice.sendTextMessage(roomId, "the password is swordfish"), CRYPTO_TIMEOUT_MS);
            ctx.secretId = sent.event_id;
            const got = await decrypted("bob", bob, roomId, sent.event_id);
            expect(got.getSender() === aliceId && got.getContent().body === "the password is swordfish", `bob decrypted ${safeJSON(got.getContent())} from ${got.getSender()}`);
            const reply = await bounded("bob replies", bob.sendTextMessage(roomId, "noted"), CRYPTO_TIMEOUT_MS);
            ctx.replyId = reply.event_id;
            const back = await decrypted("alice", alice, roomId, reply.event_id);
            expect(back.getSender() === bobId && back.getContent().body === "noted", `alice decrypted ${safeJSON(back.getContent())} from ${back.getSender()}`);
            // The server only ever saw ciphertext: the messages went out as
            // m.room.encrypted, and the room keys as encrypted to-device
            // messages.
            const plain = trace.filter((e) => e.method === "PUT" && e.path.includes(`/send/m.room.message/`));
            expect(plain.length === 0, `a client sent m.room.message in clear: ${plain.map((e) => e.path).join(", ")}`);
            const toDevice = trace.filter((e) => e.method === "PUT" && e.path.includes("/sendToDevice/m.room.encrypted/") && e.status === 200);
            expect(toDevice.some((e) => e.who === "alice") && toDevice.some((e) => e.who === "bob"), "the room keys did not go out as encrypted to-device messages from both");
            // History through /messages decrypts too.
            const page = await bounded("bob: /messages", bob.createMessagesRequest(roomId, null, 20, sdk.Direction.Backward));
            const wire = page.chunk.find((e) => e.event_id === sent.event_id);
            expect(wire?.type === "m.room.encrypted" && wire.content.ciphertext, `/messages has alice's message as ${safeJSON(wire)}`);
            const ev = new sdk.MatrixEvent(wire);
            await bounded("bob decrypts the /messages copy", bob.decryptEventIfNeeded(ev));
            expect(!ev.isDecryptionFailure() && ev.getContent().body === "the password is swordfish", `bob's /messages copy decrypts to ${safeJSON(ev.getContent())}`);
        },
    ],
    [
        "alice and bob verify each other with SAS in the room; each then trusts the other's identity and device",
        async () => {
            const { alice, bob, aliceId, bobId, roomId } = ctx;
            await sasVerification(
                ["alice", alice, () => alice.getCrypto().requestVerificationDM(bobId, roomId)],
                ["bob", bob, (r) => r.otherUserId === aliceId && r.roomId === roomId],
            );
            for (const [me, other] of [names, [...names].reverse()]) {
                const crypto = ctx[me].getCrypto();
                const user = await waitUntilAsync(`${me} to see ${other} as cross-signing verified`, async () =>
                    (await crypto.getUserVerificationStatus(ctx[`${other}Id`])).isCrossSigningVerified(),
                );
                expect(user, `${me}: ${other} is not verified`);
                const device = await crypto.getDeviceVerificationStatus(ctx[`${other}Id`], ctx[`${other}Device`]);
                expect(device?.crossSigningVerified, `${me} sees ${other}'s device as ${safeJSON(device)}, want cross-signing verified`);
                // The user-signing signature reached the server: /keys/query
                // shows it to its signer on the other's master key.
                const uskId = await crypto.getCrossSigningKeyId(sdk.CrossSigningKey?.UserSigning ?? "user_signing");
                await waitUntilAsync(`${me}'s signature on ${other}'s master key in /keys/query`, async () => {
                    const res = await ctx[me].http.authedRequest(sdk.Method.Post, "/keys/query", undefined, { device_keys: { [ctx[`${other}Id`]]: [] } });
                    return res.master_keys?.[ctx[`${other}Id`]]?.signatures?.[ctx[`${me}Id`]]?.[`ed25519:${uskId}`];
                });
            }
        },
    ],
    [
        "typing notifications reach the other client",
        async () => {
            const { alice, aliceId, roomId, bobTyping } = ctx;
            await bounded("alice starts typing", alice.sendTyping(roomId, true, 20000));
            await waitUntil("bob's client to see alice typing", () => bobTyping.some((t) => t.roomId === roomId && t.userId === aliceId && t.typing));
            expect(ctx.bob.getRoom(roomId).getMember(aliceId)?.typing, "bob's member list does not show alice typing");
            await bounded("alice stops typing", alice.sendTyping(roomId, false, 0));
            await waitUntil("bob's client to see alice stop typing", () => bobTyping.at(-1)?.userId === aliceId && !bobTyping.at(-1).typing);
        },
    ],
    [
        "unread counts rise with alice's messages; bob's read receipt clears them and alice sees it",
        async () => {
            const { alice, bob, bobId, roomId } = ctx;
            const room = bob.getRoom(roomId);
            await bounded("bob reads up to now", bob.sendReadReceipt(lastLiveEvent(bob, roomId)));
            await waitUntil(() => `bob's unread count to be 0 (is ${room.getUnreadNotificationCount(sdk.NotificationCountType.Total)})`, () =>
                room.getUnreadNotificationCount(sdk.NotificationCountType.Total) === 0,
            );
            const ids = [];
            for (const body of ["one", "two", "three"]) {
                ids.push((await bounded(`alice sends ${body}`, alice.sendTextMessage(roomId, body))).event_id);
            }
            for (const id of ids) await decrypted("bob", bob, roomId, id);
            await waitUntil(() => `bob's unread count to reach 3 (is ${room.getUnreadNotificationCount(sdk.NotificationCountType.Total)})`, () =>
                room.getUnreadNotificationCount(sdk.NotificationCountType.Total) === 3,
            );
            // In an encrypted room the SDK counts on its own and trusts the
            // server only when it says 0: the clearing is the server's.
            await bounded("bob sends a read receipt for three", bob.sendReadReceipt(room.findEventById(ids[2])));
            await waitUntil(() => `bob's unread count to clear (is ${room.getUnreadNotificationCount(sdk.NotificationCountType.Total)})`, () =>
                room.getUnreadNotificationCount(sdk.NotificationCountType.Total) === 0,
            );
            await waitUntil("alice's client to see bob's read receipt on three", () => alice.getRoom(roomId).getEventReadUpTo(bobId) === ids[2]);
            expect(alice.getRoom(roomId).getUsersReadUpTo(alice.getRoom(roomId).findEventById(ids[2])).includes(bobId), "alice's room does not list bob among the readers of three");
        },
    ],
    [
        "alice edits her message and bob reacts to it; each client sees the other's change",
        async () => {
            const { alice, bob, aliceId, bobId, roomId, secretId } = ctx;
            const edit = await bounded(
                "alice edits",
                alice.sendEvent(roomId, sdk.EventType.RoomMessage, {
                    msgtype: sdk.MsgType.Text,
                    body: "* the password is hunter2",
                    "m.new_content": { msgtype: sdk.MsgType.Text, body: "the password is hunter2" },
                    "m.relates_to": { rel_type: sdk.RelationType.Replace, event_id: secretId },
                }),
            );
            await waitUntil(
                () => `bob's client to show the edited message (body ${safeJSON(bob.getRoom(roomId).findEventById(secretId)?.getContent().body)})`,
                () => {
                    const ev = bob.getRoom(roomId).findEventById(secretId);
                    return ev?.replacingEventId() === edit.event_id && ev.getContent().body === "the password is hunter2";
                },
            );
            const rels = await bounded("bob: /relations m.replace", bob.relations(roomId, secretId, sdk.RelationType.Replace, sdk.EventType.RoomMessage));
            expect(
                rels.events.some((e) => e.getId() === edit.event_id && e.getContent()["m.new_content"]?.body === "the password is hunter2"),
                `/relations for the edit gave ${safeJSON(rels.events.map((e) => [e.getId(), e.getType(), e.getContent()]))}`,
            );

            const reaction = await bounded(
                "bob reacts",
                bob.sendEvent(roomId, sdk.EventType.Reaction, { "m.relates_to": { rel_type: sdk.RelationType.Annotation, event_id: secretId, key: "👍" } }),
            );
            ctx.reactionId = reaction.event_id;
            await waitUntil("alice's client to aggregate bob's 👍 on her message", () => {
                const annotations = alice
                    .getRoom(roomId)
                    .getUnfilteredTimelineSet()
                    .relations.getChildEventsForEvent(secretId, sdk.RelationType.Annotation, sdk.EventType.Reaction)
                    ?.getSortedAnnotationsByKey();
                const thumbs = annotations?.find(([key]) => key === "👍");
                return thumbs && [...thumbs[1]].some((e) => e.getSender() === bobId && e.getId() === reaction.event_id);
            });
            expect(alice.getRoom(roomId).findEventById(secretId)?.getSender() === aliceId, "alice lost her own message");
        },
    ],
    [
        "alice redacts a message; bob's client sees it redacted",
        async () => {
            const { alice, bob, roomId } = ctx;
            const oops = await bounded("alice sends a message to take back", alice.sendTextMessage(roomId, "my PIN is 1234"));
            await decrypted("bob", bob, roomId, oops.event_id);
            await bounded("alice redacts it", alice.redactEvent(roomId, oops.event_id, undefined, { reason: "overshared" }));
            await waitUntil("bob's client to see the message redacted", () => bob.getRoom(roomId).findEventById(oops.event_id)?.isRedacted());
            const ev = bob.getRoom(roomId).findEventById(oops.event_id);
            expect(!ev.getContent().body, `bob's redacted event still has a body: ${safeJSON(ev.getContent())}`);
            expect(ev.getUnsigned().redacted_because?.content?.reason === "overshared", `redacted_because: ${safeJSON(ev.getUnsigned().redacted_because)}`);
        },
    ],
    [
        "alice uploads a PNG and sends it; bob downloads it byte-identical through authenticated media",
        async () => {
            const { alice, bob, roomId } = ctx;
            const png = makePNG(8, 8);
            const up = await bounded("alice: uploadContent", alice.uploadContent(png, { name: "gradient.png", type: "image/png" }));
            expect(up.content_uri?.startsWith("mxc://"), `upload gave ${safeJSON(up)}`);
            const sent = await bounded(
                "alice sends m.image",
                alice.sendMessage(roomId, {
                    msgtype: sdk.MsgType.Image,
                    body: "gradient.png",
                    url: up.content_uri,
                    info: { mimetype: "image/png", size: png.length, w: 8, h: 8 },
                }),
            );
            const ev = await decrypted("bob", bob, roomId, sent.event_id);
            const url = ev.getContent().url;
            expect(url === up.content_uri, `bob's m.image has url ${url}, want ${up.content_uri}`);
            const headers = { Authorization: `Bearer ${bob.getAccessToken()}` };
            const download = bob.mxcUrlToHttp(url, undefined, undefined, undefined, false, true, true);
            expect(download?.includes("/_matrix/client/v1/media/download/"), `mxcUrlToHttp gave ${download}`);
            const res = await bounded("bob downloads the image", fetch(download, { headers }));
            const body = Buffer.from(await res.arrayBuffer());
            expect(res.status === 200, `download: HTTP ${res.status} ${body.toString().slice(0, 200)}`);
            expect(res.headers.get("content-type")?.startsWith("image/png"), `download Content-Type ${res.headers.get("content-type")}`);
            expect(body.equals(png), `downloaded ${body.length} bytes differ from the ${png.length} uploaded`);
            const unauth = await bounded("download without a token", fetch(download));
            expect(unauth.status === 401, `authenticated media served without a token: HTTP ${unauth.status}`);
            const thumb = bob.mxcUrlToHttp(url, 4, 4, "scale", false, true, true);
            const tres = await bounded("bob fetches a thumbnail", fetch(thumb, { headers }));
            const tbody = Buffer.from(await tres.arrayBuffer());
            expect(tres.status === 200 && tres.headers.get("content-type")?.startsWith("image/"), `thumbnail: HTTP ${tres.status} ${tres.headers.get("content-type")}`);
            expect(tbody.length > 0, "thumbnail is empty");
        },
    ],
    [
        "the room keys of the encrypted room are in each one's server-side key backup",
        async () => {
            for (const name of names) {
                const version = ctx[`${name}Backup`];
                await waitUntilAsync(
                    `${name}'s room keys for the encrypted room to reach backup version ${version}`,
                    async () => {
                        const res = await ctx[name].http.authedRequest(sdk.Method.Get, "/room_keys/keys", { version });
                        return Object.keys(res.rooms?.[ctx.roomId]?.sessions ?? {}).length > 0;
                    },
                    BACKUP_TIMEOUT_MS,
                );
            }
        },
    ],
    [
        "alice signs in on a new device, restores the key backup with her secret storage key and reads the encrypted history",
        async () => {
            const { aliceId, roomId, secretId } = ctx;
            const anon = sdk.createClient({ baseUrl, fetchFn: tracedFetch("laptop") });
            const login = await bounded(
                "alice logs in on a laptop",
                anon.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: "alice" }, password: password("alice") }),
                ACCOUNT_TIMEOUT_MS,
            );
            expect(login.user_id === aliceId && login.device_id !== ctx.aliceDevice, `laptop login: ${safeJSON({ user_id: login.user_id, device_id: login.device_id })}`);
            const laptop = (ctx.laptop = clientFor("laptop", login, { cryptoCallbacks: ctx.aliceCallbacks }));
            const seen = record(laptop);
            await bounded("laptop: initRustCrypto", laptop.initRustCrypto({ useIndexedDB: false }), CRYPTO_TIMEOUT_MS);
            // The room's whole history fits in the initial sync's timeline.
            await laptop.startClient({ initialSyncLimit: 100 });
            await waitPrepared("laptop", seen);
            const crypto = laptop.getCrypto();
            // Without the room key the laptop cannot read the history.
            const before = await waitUntil("the laptop's timeline to hold alice's first message", () => laptop.getRoom(roomId)?.findEventById(secretId));
            await waitUntil("the laptop's attempt to decrypt it to end", () => !before.isBeingDecrypted());
            expect(before.isDecryptionFailure(), `the laptop decrypted ${secretId} before restoring the backup: ${safeJSON(before.getContent())}`);
            await bounded("laptop: loadSessionBackupPrivateKeyFromSecretStorage", crypto.loadSessionBackupPrivateKeyFromSecretStorage());
            const check = await bounded("laptop: checkKeyBackupAndEnable", crypto.checkKeyBackupAndEnable());
            expect(check?.backupInfo?.version === ctx.aliceBackup, `the laptop sees backup ${safeJSON(check?.backupInfo)}, want version ${ctx.aliceBackup}`);
            const restored = await bounded("laptop: restoreKeyBackup", crypto.restoreKeyBackup(), CRYPTO_TIMEOUT_MS);
            expect(restored.imported >= 1, `restoreKeyBackup imported ${restored.imported} of ${restored.total} keys`);
            const after = await decrypted("laptop", laptop, roomId, secretId);
            expect(after.getClearContent()?.body === "the password is swordfish", `the laptop decrypts alice's first message to ${safeJSON(after.getClearContent())}`);
        },
    ],
    [
        "alice verifies her laptop from her first device (SAS over to-device); the laptop gets the cross-signing keys and bob trusts it",
        async () => {
            const { alice, laptop, aliceId, aliceDevice } = ctx;
            const laptopDevice = laptop.getDeviceId();
            // As a user would, verify the laptop once the first device lists
            // it: the Rust crypto ignores a request from a device it has not
            // fetched yet, and the request can come in the same /sync as the
            // device list change, before the key query that follows it.
            await waitUntilAsync("alice's first device to list the laptop", async () =>
                (await alice.getCrypto().getUserDeviceInfo([aliceId])).get(aliceId)?.has(laptopDevice),
            );
            await sasVerification(
                ["laptop", laptop, () => laptop.getCrypto().requestOwnUserVerification()],
                ["alice", alice, (r) => r.otherUserId === aliceId && !r.roomId && r.otherDeviceId === laptopDevice],
            );
            // The first device signs the laptop with the self-signing key and
            // uploads the signature; both see each other cross-signed.
            await waitUntilAsync("alice's first device to see the laptop cross-signing verified", async () =>
                (await alice.getCrypto().getDeviceVerificationStatus(aliceId, laptopDevice))?.crossSigningVerified,
            );
            await waitUntilAsync("the laptop to see alice's first device cross-signing verified", async () =>
                (await laptop.getCrypto().getDeviceVerificationStatus(aliceId, aliceDevice))?.crossSigningVerified,
            );
            // Bob, who verified alice, trusts her new device too: the
            // signature reaches him through his device list and /keys/query.
            await waitUntilAsync("bob to see alice's laptop cross-signing verified", async () =>
                (await ctx.bob.getCrypto().getDeviceVerificationStatus(aliceId, laptopDevice))?.crossSigningVerified,
            );
            // Now verified, the laptop asks for the private cross-signing
            // keys (m.secret.request) and the first device sends them
            // (m.secret.send), both as encrypted to-device messages.
            await waitUntilAsync("the laptop to hold the private cross-signing keys", async () => {
                const { privateKeysCachedLocally: k } = await laptop.getCrypto().getCrossSigningStatus();
                return k.masterKey && k.selfSigningKey && k.userSigningKey;
            });
            expect(await laptop.getCrypto().isCrossSigningReady(), "the laptop's cross-signing is not ready");
        },
    ],
    [
        "alice opens a public room with an alias; bob finds it in the directory and joins through the alias",
        async () => {
            const { alice, bob, bobId } = ctx;
            const server = bobId.slice(bobId.indexOf(":") + 1);
            const alias = `#teahouse:${server}`;
            const { room_id: roomId } = await bounded(
                "createRoom public with alias",
                alice.createRoom({ preset: sdk.Preset.PublicChat, visibility: sdk.Visibility.Public, room_alias_name: "teahouse", name: "Tea House", topic: "Everyone welcome" }),
            );
            ctx.publicRoomId = roomId;
            const resolved = await bounded("bob: getRoomIdForAlias", bob.getRoomIdForAlias(alias));
            expect(resolved.room_id === roomId, `${alias} resolves to ${resolved.room_id}, want ${roomId}`);
            expect(resolved.servers?.includes(server), `${alias} lists servers ${safeJSON(resolved.servers)}`);
            const dir = await bounded("bob: publicRooms searching 'tea house'", bob.publicRooms({ limit: 10, filter: { generic_search_term: "tea house" } }));
            const entry = dir.chunk?.find((r) => r.room_id === roomId);
            expect(entry, `the directory search for 'tea house' gave ${safeJSON(dir)}`);
            expect(entry.canonical_alias === alias && entry.name === "Tea House" && entry.world_readable === false && entry.guest_can_join === false, `directory entry ${safeJSON(entry)}`);
            const none = await bounded("bob: publicRooms searching 'coffee'", bob.publicRooms({ limit: 10, filter: { generic_search_term: "coffee" } }));
            expect(!none.chunk?.some((r) => r.room_id === roomId), `the directory search for 'coffee' found the tea house: ${safeJSON(none)}`);
            const joined = await bounded("bob joins through the alias", bob.joinRoom(alias));
            expect(joined.roomId === roomId, `joining ${alias} joined ${joined.roomId}`);
            await waitUntil("alice's client to see bob joined the tea house", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join");
            await waitUntil("bob's client to hold the tea house joined", () => bob.getRoom(roomId)?.getMyMembership() === "join");
        },
    ],
    [
        "in the unencrypted room the server's unread counts rise and clear with bob's receipt",
        async () => {
            const { alice, bob, bobId, publicRoomId: roomId } = ctx;
            const room = bob.getRoom(roomId);
            const count = () => room.getUnreadNotificationCount(sdk.NotificationCountType.Total);
            const ids = [];
            for (const body of ["the kettle is on", "oolong or sencha?"]) {
                ids.push((await bounded(`alice says ${body}`, alice.sendTextMessage(roomId, body))).event_id);
            }
            await waitUntil(() => `bob's unread count (from the server) to reach 2 (is ${count()})`, () => count() === 2);
            const last = await waitUntil("bob's client to hold alice's last message", () => room.findEventById(ids[1]));
            await bounded("bob sends a read receipt", bob.sendReadReceipt(last));
            await waitUntil(() => `bob's unread count to clear (is ${count()})`, () => count() === 0);
            await waitUntil("alice's client to see bob's receipt", () => alice.getRoom(roomId).getEventReadUpTo(bobId) === ids[1]);
        },
    ],
    [
        "bob searches the history: words of the unencrypted room are found, the encrypted room's are not",
        async () => {
            const { bob, aliceId, publicRoomId, roomId } = ctx;
            const found = await bounded("bob: searchRoomEvents 'sencha'", bob.searchRoomEvents({ term: "sencha" }));
            const hit = found.results.find((r) => r.context.getEvent().getRoomId() === publicRoomId);
            expect(hit, `searching 'sencha' found ${safeJSON(found.results.map((r) => r.context.getEvent().event))}`);
            const ev = hit.context.getEvent();
            expect(ev.getSender() === aliceId && ev.getContent().body === "oolong or sencha?", `the hit is ${safeJSON(ev.event)}`);
            expect(found.count >= 1 && found.highlights.length > 0, `count ${found.count}, highlights ${safeJSON(found.highlights)}`);
            // The server holds only ciphertext of the encrypted room.
            const secret = await bounded("bob: searchRoomEvents 'swordfish'", bob.searchRoomEvents({ term: "swordfish", filter: { rooms: [roomId] } }));
            expect(secret.results.length === 0, `searching the encrypted room found ${safeJSON(secret.results.map((r) => r.context.getEvent().event))}`);
        },
    ],
];

// Refusals that belong to the flow: the key backup's absence until each
// sets one up, and the UIA challenge of the cross-signing reset.
const expectedRefusals = (e) =>
    (e.status === 404 && e.method === "GET" && e.path.endsWith("/room_keys/version")) ||
    (e.status === 401 && e.method === "POST" && e.path.endsWith("/keys/device_signing/upload"));

await runFlow(steps, () => [ctx.alice, ctx.bob, ctx.laptop], expectedRefusals);
