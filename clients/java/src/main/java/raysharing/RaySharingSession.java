package raysharing;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.zip.CRC32;
import raysharing.v1.Common;
import raysharing.v1.HoldersGrpc;
import raysharing.v1.HoldersOuterClass;
import raysharing.v1.ObjectsGrpc;
import raysharing.v1.ObjectsOuterClass;
import raysharing.v1.SessionsGrpc;
import raysharing.v1.SessionsOuterClass;

/**
 * One session with a RaySharing worker over gRPC (protos/raysharing/v1): the JVM side of "executors put partitions a
 * holder owns". Open it with {@link #open(String, Options)}, look the holder up, {@link #put(byte[], Holder)} bytes
 * with the holder as owner, {@link #register(Holder, String, List)} the refs under a key, and close it: the objects
 * live on, owned by the holder, for any other session (in any language) to fetch.
 *
 * <p>Every call has a deadline ({@link Options#callTimeout()}). A background daemon thread renews the session's lease
 * at about a third of the lease the worker granted; a session that stops renewing (its process paused longer than the
 * lease) is ended by the worker, and later calls fail with {@link SessionExpiredException}. Calls may be made from
 * several threads at once. Failures are {@link RaySharingException}s whose {@link RaySharingException#reason()} is
 * the worker's reason (protos/ERRORS.md).
 */
public final class RaySharingSession implements AutoCloseable {
    /** Bytes per PutStream message: 1 MiB, the top of the range objects.proto recommends. */
    static final int CHUNK_BYTES = 1 << 20;
    /** Envelopes per Register call: at most this many bytes of them (as the .NET client does). */
    static final int REGISTER_BATCH_BYTES = 4 << 20;
    private static final int RELEASE_BATCH = 100_000;
    private static final int MAX_INBOUND_MESSAGE_BYTES = 64 << 20;

    private static final Metadata.Key<String> SESSION_TOKEN = Failures.key("rs-session-token");
    private static final Metadata.Key<String> PUT_ACCEPTED = Failures.key("rs-put-accepted");

    /**
     * How a session is opened. Immutable: {@code Options.defaults().withNamespace("spark")} returns a new instance.
     *
     * @param namespace the session's default namespace; {@code ""} means {@code "default"}. Default {@code ""}.
     * @param lease the lease to ask for; the worker clamps it into its range (200 ms to 5 min by default) and
     *     {@link #leaseMillis()} says what it granted. {@link Duration#ZERO} asks for the worker's default (10 s).
     *     Default 10 s.
     * @param clientName free text for the worker's log; may be empty. Default {@code "raysharing-java"}.
     * @param callTimeout the deadline of every unary call, of the handshake and each chunk of a put stream, and of a
     *     put stream's reply. Default 30 s.
     */
    public record Options(String namespace, Duration lease, String clientName, Duration callTimeout) {
        /**
         * Checks the options.
         *
         * @param namespace the session's default namespace
         * @param lease the lease to ask for
         * @param clientName the name the worker logs
         * @param callTimeout the deadline of every call
         * @throws IllegalArgumentException naming the option that is out of range
         */
        public Options {
            Objects.requireNonNull(namespace, "namespace");
            Objects.requireNonNull(lease, "lease");
            Objects.requireNonNull(clientName, "clientName");
            Objects.requireNonNull(callTimeout, "callTimeout");
            if (lease.isNegative() || lease.toMillis() > 0xFFFF_FFFFL) {
                throw new IllegalArgumentException("lease must be 0 (the worker's default) to 2^32-1 ms; got " + lease);
            }
            if (callTimeout.isNegative() || callTimeout.isZero()) {
                throw new IllegalArgumentException("callTimeout must be positive; got " + callTimeout);
            }
        }

        /** @return namespace "" (the worker's "default"), lease 10 s, client name "raysharing-java", call timeout 30 s */
        public static Options defaults() {
            return new Options("", Duration.ofSeconds(10), "raysharing-java", Duration.ofSeconds(30));
        }

        /**
         * @param value the session's default namespace
         * @return a copy with it
         */
        public Options withNamespace(String value) {
            return new Options(value, lease, clientName, callTimeout);
        }

        /**
         * @param value the lease to ask for
         * @return a copy with it
         */
        public Options withLease(Duration value) {
            return new Options(namespace, value, clientName, callTimeout);
        }

        /**
         * @param value the name the worker logs
         * @return a copy with it
         */
        public Options withClientName(String value) {
            return new Options(namespace, lease, value, callTimeout);
        }

        /**
         * @param value the deadline of every call
         * @return a copy with it
         */
        public Options withCallTimeout(Duration value) {
            return new Options(namespace, lease, clientName, value);
        }
    }

    private final String address;
    private final Options options;
    private final ManagedChannel channel;
    private final Channel calls;
    private final byte[] sessionId;
    private final byte[] workerId;
    private final String workerAddress;
    private static final long CLOSE_TIMEOUT_MILLIS = 2000;

    private volatile long leaseMillis;
    private ScheduledFuture<?> renewal;
    private final long maxUnaryObjectBytes;
    private final ScheduledExecutorService renewals;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile RaySharingException renewalFailure;

    private RaySharingSession(String address, Options options, ManagedChannel channel, SessionsOuterClass.OpenSessionReply reply) {
        this.address = address;
        this.options = options;
        this.channel = channel;
        this.sessionId = reply.getSessionId().toByteArray();
        this.workerId = reply.getWorkerId().toByteArray();
        this.workerAddress = reply.getWorkerAddress();
        this.leaseMillis = Integer.toUnsignedLong(reply.getLeaseMillis());
        this.maxUnaryObjectBytes = Integer.toUnsignedLong(reply.getMaxUnaryObjectBytes());
        Metadata token = new Metadata();
        token.put(SESSION_TOKEN, Hex.encode(reply.getSessionToken().toByteArray()));
        this.calls = ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(token));
        this.renewals = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, "raysharing-lease-" + Hex.encode(sessionId).substring(0, 8));
            thread.setDaemon(true);
            return thread;
        });
        scheduleRenewals();
    }

    /** Renews at a third of the lease the worker granted last (it may grant another one at a renewal). */
    private synchronized void scheduleRenewals() {
        if (renewal != null) {
            renewal.cancel(false);
        }
        long period = Math.max(1, leaseMillis / 3);
        renewal = renewals.scheduleWithFixedDelay(this::renew, period, period, TimeUnit.MILLISECONDS);
    }

    /**
     * Connects to a worker and opens a session.
     *
     * @param address the worker's gRPC address: {@code http://host:port} (HTTP/2 without TLS), or {@code host:port}
     * @param options namespace, lease, client name and call timeout; see {@link Options#defaults()}
     * @return the open session; close it when done
     * @throws IllegalArgumentException when the address is not one
     * @throws WorkerUnavailableException when no worker answers there
     * @throws RaySharingTimeoutException when the worker does not answer within the call timeout
     * @throws RaySharingException for any other refusal
     */
    public static RaySharingSession open(String address, Options options) {
        Objects.requireNonNull(options, "options");
        URI uri = parseAddress(address);
        String host = uri.getHost().startsWith("[") ? uri.getHost().substring(1, uri.getHost().length() - 1) : uri.getHost();
        ManagedChannel channel = NettyChannelBuilder.forAddress(host, uri.getPort())
            .usePlaintext()
            .maxInboundMessageSize(MAX_INBOUND_MESSAGE_BYTES)
            .build();
        try {
            SessionsOuterClass.OpenSessionReply reply = call("Sessions.Open", address, () ->
                SessionsGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(options.callTimeout().toMillis(), TimeUnit.MILLISECONDS)
                    .open(SessionsOuterClass.OpenSessionRequest.newBuilder()
                        .setNamespace(options.namespace())
                        .setLeaseMillis((int) options.lease().toMillis())
                        .setClientName(options.clientName())
                        .build()));
            return new RaySharingSession(address, options, channel, reply);
        } catch (RuntimeException e) {
            channel.shutdownNow();
            throw e;
        }
    }

    /** @return the address this session connected to */
    public String address() {
        return address;
    }

    /** @return the session id, 32 lowercase hex characters: public, it names the owner of session-owned objects */
    public String sessionId() {
        return Hex.encode(sessionId);
    }

    /** @return the worker instance's id, 32 lowercase hex characters; a restarted worker has a new one */
    public String workerId() {
        return Hex.encode(workerId);
    }

    /** @return the address other sessions use to reach the worker, as the worker reported it */
    public String workerAddress() {
        return workerAddress;
    }

    /** @return the lease the worker granted, in milliseconds; the session renews it at about a third of that */
    public long leaseMillis() {
        return leaseMillis;
    }

    /** @return the largest object the unary Put carries; larger ones go through PutStream */
    public long maxUnaryObjectBytes() {
        return maxUnaryObjectBytes;
    }

    /**
     * @return the failure that ended lease renewal ({@link SessionExpiredException}: the worker ended the session), or
     *     the last failed renewal while the session keeps trying; null when every renewal so far succeeded
     */
    public RaySharingException renewalFailure() {
        return renewalFailure;
    }

    /**
     * Returns the live holder with this name in the session's namespace (Holders.Get).
     *
     * @param name the holder's name
     * @return the holder
     * @throws HolderNotFoundException when no live holder has this name
     */
    public Holder getHolder(String name) {
        return getHolder("", name);
    }

    /**
     * Returns the live holder with this namespace and name (Holders.Get).
     *
     * @param namespace the holder's namespace; {@code ""} means the session's
     * @param name the holder's name
     * @return the holder
     * @throws HolderNotFoundException when no live holder has this name
     */
    public Holder getHolder(String namespace, String name) {
        HoldersOuterClass.HolderReply reply = call("Holders.Get", address, () -> holders().get(
            HoldersOuterClass.GetHolderRequest.newBuilder().setNamespace(namespace).setName(name).build()));
        return holder(reply.getHolder());
    }

    /**
     * Returns the live holder with this name in the session's namespace, creating it (detached: it lives until killed)
     * when there is none (Holders.GetOrCreate).
     *
     * @param name the holder's name
     * @return the holder
     */
    public Holder getOrCreateHolder(String name) {
        HoldersOuterClass.HolderReply reply = call("Holders.GetOrCreate", address, () -> holders().getOrCreate(
            HoldersOuterClass.GetOrCreateHolderRequest.newBuilder()
                .setName(name)
                .setLifetime(Common.HolderLifetime.HOLDER_LIFETIME_DETACHED)
                .build()));
        return holder(reply.getHolder());
    }

    /**
     * Puts bytes as a {@link Codec#RAW} object (type name {@code ""}) owned by {@code owner}. Objects up to
     * {@link #maxUnaryObjectBytes()} go in one Put; larger ones through PutStream, which sends its header alone, waits
     * for the worker's {@code rs-put-accepted} answer (room reserved, owner alive) and only then sends the bytes in
     * 1 MiB messages. The bytes are sent from {@code data} itself: do not change it until this returns. The session
     * borrows the new ref; {@link #release(List)} it, or close the session, when the holder has it registered.
     *
     * @param data the object's bytes
     * @param owner the owning holder, pinned to its incarnation; null makes the session the owner (the object then
     *     dies with the session)
     * @return the new ref
     * @throws OwnerDiedException when the holder is no longer alive
     * @throws RaySharingException with reason {@code STORE_FULL}, {@code CHECKSUM_MISMATCH}, ... as the worker says
     */
    public ObjectRef put(byte[] data, Holder owner) {
        Objects.requireNonNull(data, "data");
        CRC32 crc = new CRC32();
        crc.update(data);
        ObjectsOuterClass.PutHeader.Builder header = ObjectsOuterClass.PutHeader.newBuilder()
            .setCodec(Common.Codec.CODEC_RAW)
            .setTypeName("")
            .setSize(data.length)
            .setChecksum((int) crc.getValue());
        if (owner != null) {
            header.setOwnerHolder(holderRef(owner));
        }
        ObjectsOuterClass.PutReply reply = data.length <= maxUnaryObjectBytes
            ? call("Objects.Put", address, () -> objects().put(ObjectsOuterClass.PutRequest.newBuilder()
                .setHeader(header)
                .setData(UnsafeByteOperations.unsafeWrap(data))
                .build()))
            : putStream(header.build(), data);
        ObjectRef ref = new ObjectRef(reply.getEnvelope().toByteArray());
        if (ref.envelope().size() != data.length || ref.envelope().checksum() != crc.getValue()) {
            throw new InvalidEnvelopeException("Objects.Put on worker " + address + " returned an envelope for "
                + ref.envelope().size() + " bytes with checksum " + ref.envelope().checksum() + "; " + data.length
                + " bytes with checksum " + crc.getValue() + " were put");
        }
        return ref;
    }

    /**
     * Appends refs to the list the holder keeps under {@code key}, in order (Holders.Register, pinned to the holder's
     * incarnation). Every ref must be owned by this holder (else reason {@code NOT_OWNER}) and alive. Long lists go in
     * several calls of at most 4 MiB of envelopes each; each call is atomic, so a failure after the first leaves the
     * earlier batches registered.
     *
     * @param holder the owning holder
     * @param key the registry key
     * @param refs the refs, in the order they are to be fetched
     * @return the length of the key's list after the last call
     * @throws OwnerDiedException when the holder is no longer alive
     */
    public int register(Holder holder, String key, List<ObjectRef> refs) {
        Objects.requireNonNull(holder, "holder");
        Objects.requireNonNull(key, "key");
        HoldersOuterClass.RegisterRequest.Builder batch = null;
        int batchBytes = 0;
        int count = 0;
        for (ObjectRef ref : refs) {
            if (batch != null && batchBytes + ref.envelopeLength() > REGISTER_BATCH_BYTES) {
                count = sendRegister(batch);
                batch = null;
            }
            if (batch == null) {
                batch = HoldersOuterClass.RegisterRequest.newBuilder().setHolder(holderRef(holder)).setKey(key);
                batchBytes = 0;
            }
            batch.addEnvelopes(ref.envelopeByteString());
            batchBytes += ref.envelopeLength();
        }
        if (batch == null && count == 0) {
            // No refs: the call still says how long the key's list is (and checks the holder).
            batch = HoldersOuterClass.RegisterRequest.newBuilder().setHolder(holderRef(holder)).setKey(key);
        }
        return batch == null ? count : sendRegister(batch);
    }

    /**
     * Drops this session's borrow of each ref (Objects.Release). Objects that no key registers and no session borrows
     * are then freed. Unknown or already freed refs are ignored.
     *
     * @param refs the refs to release
     */
    public void release(List<ObjectRef> refs) {
        for (int start = 0; start < refs.size(); start += RELEASE_BATCH) {
            ObjectsOuterClass.ReleaseRequest.Builder request = ObjectsOuterClass.ReleaseRequest.newBuilder();
            for (ObjectRef ref : refs.subList(start, Math.min(refs.size(), start + RELEASE_BATCH))) {
                request.addObjectIds(ByteString.copyFrom(ref.envelope().objectId()));
            }
            call("Objects.Release", address, () -> objects().release(request.build()));
        }
    }

    /**
     * Ends the session (Sessions.Close) and closes the connection. The session's borrows drop; objects a holder owns
     * live on. A worker that cannot be reached is not an error here: the session then ends when its lease lapses.
     * Idempotent.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        renewals.shutdownNow();
        try {
            // Best effort, so bounded tighter than a call: a worker that does not answer ends the session at its lease.
            call("Sessions.Close", address, () -> SessionsGrpc.newBlockingStub(calls)
                .withDeadlineAfter(Math.min(options.callTimeout().toMillis(), CLOSE_TIMEOUT_MILLIS), TimeUnit.MILLISECONDS)
                .close(SessionsOuterClass.CloseSessionRequest.getDefaultInstance()));
        } catch (RaySharingException e) {
            // Unreachable worker or already ended session: either way the session is over.
        } finally {
            // The session is over: calls still in flight on other threads are cut, not waited for.
            channel.shutdownNow();
            try {
                channel.awaitTermination(CLOSE_TIMEOUT_MILLIS, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public String toString() {
        return "RaySharingSession(" + sessionId() + " on " + address + ")";
    }

    private void renew() {
        try {
            // A renewal that takes longer than a third of the lease is as good as lost.
            SessionsOuterClass.KeepAliveReply reply = SessionsGrpc.newBlockingStub(calls)
                .withDeadlineAfter(Math.min(options.callTimeout().toMillis(), Math.max(100, leaseMillis / 3)), TimeUnit.MILLISECONDS)
                .keepAlive(SessionsOuterClass.KeepAliveRequest.getDefaultInstance());
            renewalFailure = null;
            long granted = Integer.toUnsignedLong(reply.getLeaseMillis());
            if (granted > 0 && granted != leaseMillis) {
                leaseMillis = granted;
                scheduleRenewals();
            }
        } catch (StatusRuntimeException e) {
            RaySharingException failure = Failures.fromStatus("Sessions.KeepAlive", address, e.getStatus(), e.getTrailers());
            renewalFailure = failure;
            if (failure instanceof SessionExpiredException) {
                // The worker ended the session: renewing further cannot bring it back.
                renewals.shutdown();
            }
        }
    }

    private int sendRegister(HoldersOuterClass.RegisterRequest.Builder batch) {
        return call("Holders.Register", address, () -> holders().register(batch.build())).getCount();
    }

    private ObjectsOuterClass.PutReply putStream(ObjectsOuterClass.PutHeader header, byte[] data) {
        long step = options.callTimeout().toMillis();
        long chunks = (data.length + (long) CHUNK_BYTES - 1) / CHUNK_BYTES;
        // The whole stream's deadline, a backstop the worker sees too: each step below is bounded by the call timeout.
        CallOptions callOptions = CallOptions.DEFAULT.withDeadlineAfter(step * (chunks + 2), TimeUnit.MILLISECONDS);
        ClientCall<ObjectsOuterClass.PutRequest, ObjectsOuterClass.PutReply> call =
            calls.newCall(ObjectsGrpc.getPutStreamMethod(), callOptions);
        PutStreamListener listener = new PutStreamListener();
        call.start(listener, new Metadata());
        call.request(1);
        try {
            call.sendMessage(ObjectsOuterClass.PutRequest.newBuilder().setHeader(header).build());
            // Bytes flow only once the worker accepted the header: after a refusal, DATA frames would make its HTTP/2
            // server close the whole connection.
            if (!listener.await(() -> listener.accepted || listener.status != null, step)) {
                throw timedOut(call, "did not answer the put stream's header", step);
            }
            for (int offset = 0; offset < data.length && listener.status == null; offset += CHUNK_BYTES) {
                if (!listener.await(() -> call.isReady() || listener.status != null, step)) {
                    throw timedOut(call, "took no bytes of the put stream at offset " + offset, step);
                }
                if (listener.status != null) {
                    break;
                }
                int length = Math.min(CHUNK_BYTES, data.length - offset);
                call.sendMessage(ObjectsOuterClass.PutRequest.newBuilder()
                    .setData(UnsafeByteOperations.unsafeWrap(data, offset, length))
                    .build());
            }
            if (listener.status == null) {
                call.halfClose();
            }
            if (!listener.await(() -> listener.status != null, step)) {
                throw timedOut(call, "did not acknowledge the put stream", step);
            }
        } catch (RuntimeException e) {
            if (listener.status == null) {
                call.cancel("the client gave up on the put stream", e);
            }
            throw e;
        }
        if (!listener.status.isOk()) {
            throw Failures.fromStatus("Objects.PutStream", address, listener.status, listener.trailers);
        }
        if (listener.reply == null) {
            throw new RaySharingException("PROTOCOL_ERROR", "Objects.PutStream on worker " + address + " ended without a reply", null);
        }
        return listener.reply;
    }

    private RaySharingTimeoutException timedOut(ClientCall<?, ?> call, String what, long millis) {
        call.cancel("the client's call timeout elapsed", null);
        return new RaySharingTimeoutException("Objects.PutStream: worker " + address + " " + what + " within " + millis
            + " ms. The worker may be overloaded or stuck.", null, RaySharingException.Trailers.NONE);
    }

    private HoldersGrpc.HoldersBlockingStub holders() {
        return HoldersGrpc.newBlockingStub(calls).withDeadlineAfter(options.callTimeout().toMillis(), TimeUnit.MILLISECONDS);
    }

    private ObjectsGrpc.ObjectsBlockingStub objects() {
        return ObjectsGrpc.newBlockingStub(calls).withDeadlineAfter(options.callTimeout().toMillis(), TimeUnit.MILLISECONDS);
    }

    private static Common.HolderRef holderRef(Holder holder) {
        return Common.HolderRef.newBuilder()
            .setNamespace(holder.namespace())
            .setName(holder.name())
            .setIncarnation(ByteString.copyFrom(holder.incarnationBytes()))
            .build();
    }

    private static Holder holder(HoldersOuterClass.HolderInfo info) {
        return new Holder(info.getNamespace(), info.getName(), Hex.encode(info.getIncarnation().toByteArray()));
    }

    private static <T> T call(String operation, String address, Supplier<T> body) {
        try {
            return body.get();
        } catch (StatusRuntimeException e) {
            throw Failures.fromStatus(operation, address, e.getStatus(), e.getTrailers());
        }
    }

    private static URI parseAddress(String address) {
        Objects.requireNonNull(address, "address");
        try {
            URI uri = new URI(address.contains("://") ? address : "http://" + address);
            if (!"http".equals(uri.getScheme())) {
                throw new IllegalArgumentException("address must be http://host:port (the worker speaks HTTP/2 without TLS); got " + address);
            }
            if (uri.getHost() == null || uri.getPort() < 0) {
                throw new IllegalArgumentException("address must name a host and a port, as http://127.0.0.1:7480; got " + address);
            }
            return uri;
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("address is not a URI: " + address, e);
        }
    }

    /** Collects a put stream's events; waiters are woken on each. */
    private static final class PutStreamListener extends ClientCall.Listener<ObjectsOuterClass.PutReply> {
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition changed = lock.newCondition();
        volatile boolean accepted;
        volatile ObjectsOuterClass.PutReply reply;
        volatile Status status;
        volatile Metadata trailers;

        @Override
        public void onHeaders(Metadata headers) {
            accepted = "1".equals(headers.get(PUT_ACCEPTED));
            signal();
        }

        @Override
        public void onMessage(ObjectsOuterClass.PutReply message) {
            reply = message;
            signal();
        }

        @Override
        public void onClose(Status closeStatus, Metadata closeTrailers) {
            trailers = closeTrailers;
            status = closeStatus;
            signal();
        }

        @Override
        public void onReady() {
            signal();
        }

        /** Waits until the condition holds; false when it still does not after {@code millis}. */
        boolean await(java.util.function.BooleanSupplier condition, long millis) {
            long left = TimeUnit.MILLISECONDS.toNanos(millis);
            lock.lock();
            try {
                while (!condition.getAsBoolean()) {
                    if (left <= 0) {
                        return false;
                    }
                    left = changed.awaitNanos(left);
                }
                return true;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new RaySharingException("CANCELLED", "the put stream was interrupted", e);
            } finally {
                lock.unlock();
            }
        }

        private void signal() {
            lock.lock();
            try {
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        }
    }
}
