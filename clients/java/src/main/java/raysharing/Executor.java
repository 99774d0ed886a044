package raysharing;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The JVM executor of the seed scenario, as a command: puts N partitions owned by a holder another process created,
 * registers them under a key in index order, and exits; the objects live on, owned by the holder.
 *
 * <pre>
 * java -cp "$(cat clients/java/build/classpath.txt)" raysharing.Executor --address http://127.0.0.1:7480 \
 *     --holder NAME [--namespace NS] --key KEY --partitions N --size BYTES --seed S [--first-index I] \
 *     [--call-timeout-ms MS] [--lease-ms MS]
 * </pre>
 *
 * <p>Byte {@code j} of partition {@code i} is {@code (seed + 131*i + j) % 251}, so a driver in any language can check
 * the bytes without being told them. Prints {@code PUT <index> <size> <crc32 as 8 hex>} per partition as it is put,
 * then {@code DONE <n>} once all are registered, and exits 0. A failure prints {@code ERROR <reason> <message>} and
 * exits 1; a bad command line prints {@code ERROR USAGE <message>} and exits 2.
 */
public final class Executor {
    private Executor() {
    }

    /**
     * Runs the executor.
     *
     * @param args the command line above
     */
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /**
     * Partition {@code index}'s bytes: byte {@code j} is {@code (seed + 131*index + j) % 251}.
     *
     * @param seed the run's seed
     * @param index the partition's index
     * @param size its length in bytes
     * @return the bytes
     */
    public static byte[] partition(long seed, long index, int size) {
        byte[] data = new byte[size];
        int value = (int) Math.floorMod(seed + 131 * index, 251L);
        for (int j = 0; j < size; j++) {
            data[j] = (byte) value;
            value = value == 250 ? 0 : value + 1;
        }
        return data;
    }

    private static int run(String[] args) {
        Map<String, String> options;
        String address;
        String holderName;
        String key;
        int partitions;
        int size;
        long seed;
        long firstIndex;
        RaySharingSession.Options sessionOptions;
        if (Arrays.asList(args).contains("--help") || Arrays.asList(args).contains("-h")) {
            System.out.println(USAGE);
            return 0;
        }
        try {
            options = parse(args);
            address = required(options, "--address");
            holderName = required(options, "--holder");
            key = required(options, "--key");
            if (key.isEmpty() || holderName.isEmpty()) {
                throw new IllegalArgumentException("--holder and --key must not be empty");
            }
            partitions = (int) number(options, "--partitions", null);
            size = (int) number(options, "--size", null);
            seed = number(options, "--seed", null);
            firstIndex = number(options, "--first-index", "0");
            if (partitions < 0 || size < 0 || firstIndex < 0) {
                throw new IllegalArgumentException("--partitions, --size and --first-index are not negative");
            }
            sessionOptions = RaySharingSession.Options.defaults()
                .withNamespace(options.getOrDefault("--namespace", ""))
                .withClientName("raysharing-java-executor")
                .withCallTimeout(Duration.ofMillis(number(options, "--call-timeout-ms", "10000")))
                .withLease(Duration.ofMillis(number(options, "--lease-ms", "10000")));
        } catch (IllegalArgumentException e) {
            System.out.println("ERROR USAGE " + e.getMessage());
            System.out.println(USAGE);
            return 2;
        }

        try (RaySharingSession session = RaySharingSession.open(address, sessionOptions)) {
            // The driver created the holder: a missing one is an error, never silently created here.
            Holder holder = session.getHolder(options.getOrDefault("--namespace", ""), holderName);
            List<ObjectRef> refs = new ArrayList<>(partitions);
            for (int n = 0; n < partitions; n++) {
                long index = firstIndex + n;
                byte[] data = partition(seed, index, size);
                refs.add(session.put(data, holder));
                CRC32 crc = new CRC32();
                crc.update(data);
                System.out.printf("PUT %d %d %08x%n", index, size, crc.getValue());
            }
            session.register(holder, key, refs);
            // The holder owns the objects and the key registers them: the session's own borrows can go.
            session.release(refs);
            System.out.println("DONE " + partitions);
            System.out.flush();
            return 0;
        } catch (RaySharingException e) {
            System.out.println("ERROR " + e.reason() + " " + oneLine(e.getMessage()));
            return 1;
        } catch (IllegalArgumentException e) {
            System.out.println("ERROR USAGE " + oneLine(e.getMessage()));
            return 2;
        }
    }

    private static final String USAGE = "usage: Executor --address http://HOST:PORT --holder NAME [--namespace NS] --key KEY"
        + " --partitions N --size BYTES --seed S [--first-index I] [--call-timeout-ms MS] [--lease-ms MS]";

    private static Map<String, String> parse(String[] args) {
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --option value pairs; got '" + args[i] + "'");
            }
            switch (args[i]) {
                case "--address", "--holder", "--namespace", "--key", "--partitions", "--size", "--seed", "--first-index",
                    "--call-timeout-ms", "--lease-ms" -> options.put(args[i], args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        return options;
    }

    /** The option's value as a whole number (int range for the counts), or {@code fallback} when absent; else a usage error naming it. */
    private static long number(Map<String, String> options, String name, String fallback) {
        String value = fallback == null ? required(options, name) : options.getOrDefault(name, fallback);
        try {
            long parsed = Long.parseLong(value);
            if ((name.equals("--partitions") || name.equals("--size")) && parsed > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(name + " is at most " + Integer.MAX_VALUE + "; got " + value);
            }
            return parsed;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " takes a whole number; got '" + value + "'");
        }
    }

    private static String required(Map<String, String> options, String name) {
        String value = options.get(name);
        if (value == null) {
            throw new IllegalArgumentException(name + " is required");
        }
        return value;
    }

    private static String oneLine(String message) {
        return message == null ? "" : message.replace('\n', ' ').replace('\r', ' ');
    }
}
