import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createClient, FlowDockError } from "./index";
import { UploadState } from "./gen/flowdock/storage/v1/storage_pb";
import { chunkLength, type UploadProgress, type UploadRecord } from "./upload";
import { bytes, FakeAuth, FakeStorage, fakeTransport } from "./testing/fake-server";

function setup(storage = new FakeStorage()) {
  const client = createClient({
    transport: fakeTransport(storage, new FakeAuth()),
    inlineUploadBytes: storage.inlineLimit,
    retryDelayMs: 1,
    maxRetryDelayMs: 2,
    finishPollMs: 1,
  });
  return { client, storage };
}

/** A File whose whole-content read is forbidden: the chunked path must read slices only. */
function sliceOnlyFile(content: Uint8Array<ArrayBuffer>, name = "f.bin"): File {
  const file = new File([content], name, { lastModified: 1234 });
  file.arrayBuffer = () => Promise.reject(new Error("read the whole file"));
  return file;
}

/** A slice-only File that logs "read <start>" to `events` when a slice's bytes are asked for. */
function loggedFile(content: Uint8Array<ArrayBuffer>, events: string[]): File {
  const file = sliceOnlyFile(content);
  const slice = file.slice.bind(file);
  file.slice = (start?: number, end?: number) => {
    const part = slice(start, end);
    const read = part.arrayBuffer.bind(part);
    part.arrayBuffer = () => {
      events.push(`read ${start ?? 0}`);
      return read();
    };
    return part;
  };
  return file;
}

describe("read-ahead", () => {
  it("reads the next slice while the chunk before is in flight, one chunk call at a time", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    storage.writeDelayMs = 20;
    const { client } = setup(storage);
    const content = bytes(10);
    const result = await client.upload(loggedFile(content, storage.events));
    const at = (e: string) => storage.events.indexOf(e);
    expect(at("read 4")).toBeGreaterThan(at("read 0"));
    expect(at("read 4")).toBeLessThan(at("answer 0")); // read while chunk 0 was in flight
    expect(at("read 8")).toBeLessThan(at("answer 4"));
    expect(at("read 8")).toBeGreaterThan(at("answer 0")); // never more than one slice ahead
    expect(storage.events.filter((e) => !e.startsWith("read"))).toEqual([
      "write 0",
      "answer 0",
      "write 4",
      "answer 4",
      "write 8",
      "answer 8",
    ]);
    expect(storage.events.filter((e) => e.startsWith("read"))).toEqual(["read 0", "read 4", "read 8"]);
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
  });

  it("after a lost answer, resumes from the committed offset with the slice it read ahead", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    storage.writeDelayMs = 5;
    // The second chunk is stored but its answer is lost: the client asks, learns 8, and goes on from there.
    storage.beforeWrite = (n) =>
      n === 1 ? { error: new ConnectError("upstream connect error", Code.Unavailable), store: true } : undefined;
    const { client } = setup(storage);
    const content = bytes(10);
    const result = await client.upload(loggedFile(content, storage.events));
    expect(storage.writes.map((w) => w.offset)).toEqual([0, 4, 8]);
    expect(storage.events.filter((e) => e.startsWith("read"))).toEqual(["read 0", "read 4", "read 8"]);
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
  });

  it("drops a read-ahead the server's offset makes useless, and reads where the server stands", async () => {
    const storage = new FakeStorage();
    storage.writeDelayMs = 5;
    const { client } = setup(storage);
    const content = bytes(12);
    const id = storage.open(12);
    // Chunk 0 is refused: another tab already stored 8 bytes; the slice read ahead (4..8) is not sent.
    storage.beforeWrite = (n) => {
      if (n === 0) {
        const u = storage.uploads.get(id)!;
        u.data.set(content.slice(0, 8));
        u.upload.committedSize = 8n;
      }
      return undefined;
    };
    await client.resumeUpload(id, loggedFile(content, storage.events));
    expect(storage.writes.map((w) => w.offset)).toEqual([0, 8]);
    expect(storage.uploads.get(id)?.data).toEqual(content);
  });
});

describe("chunked upload", () => {
  it("sends server-advised chunks, the last one short, then finishes", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    const { client } = setup(storage);
    const content = bytes(10);
    const records: UploadRecord[] = [];
    const progress: UploadProgress[] = [];
    const result = await client.upload(sliceOnlyFile(content), {
      onCreated: (r) => records.push(r),
      onProgress: (p) => progress.push(p),
    });
    expect(storage.writes).toEqual([
      { offset: 0, length: 4 },
      { offset: 4, length: 4 },
      { offset: 8, length: 2 },
    ]);
    expect(storage.calls.at(-1)).toBe("finishUpload");
    const stored = storage.uploads.get(result.uploadId);
    expect(stored?.data).toEqual(content);
    expect(result.node.name).toBe("f.bin");
    expect(records).toEqual([
      { uploadId: result.uploadId, name: "f.bin", size: 10, lastModified: 1234, parentId: "root" },
    ]);
    expect(progress.map((p) => p.committedBytes)).toEqual([0, 4, 8, 10]);
    expect(progress.every((p) => p.totalBytes === 10 && p.bytesPerSecond >= 0)).toBe(true);
  });

  it("never sends more than max_chunk_size even when the advice is larger", () => {
    expect(chunkLength({ chunkSize: 8n, maxChunkSize: 5n })).toBe(5);
    expect(chunkLength({ chunkSize: 4n, maxChunkSize: 16n })).toBe(4);
    expect(chunkLength({ chunkSize: 0n, maxChunkSize: 0n })).toBe(1024 * 1024);
  });

  it("uses max_chunk_size when the server advises more", async () => {
    const storage = new FakeStorage();
    storage.chunkSize = 64n;
    storage.maxChunkSize = 3n;
    storage.inlineLimit = 0;
    const { client } = setup(storage);
    await client.upload(sliceOnlyFile(bytes(7)), { name: "x" });
    expect(storage.writes.map((w) => w.length)).toEqual([3, 3, 1]);
  });

  it("a 0-byte file is created and finished without chunks", async () => {
    const { client, storage } = setup();
    const result = await client.upload(new File([], "empty.txt"));
    expect(storage.calls).toEqual(["createUpload", "finishUpload"]);
    expect(storage.writes).toEqual([]);
    expect(result.node.size).toBe(0n);
  });

  it("a small file goes in one call with its content", async () => {
    const { client, storage } = setup();
    const content = bytes(6);
    const result = await client.upload(new File([content], "small.txt"));
    expect(storage.calls).toEqual(["createUpload"]);
    expect(storage.uploads.get(result.uploadId)?.inline).toBe(true);
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
  });

  it("falls back to chunks when the server's inline limit is lower, and remembers it", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 2;
    const client = createClient({ transport: fakeTransport(storage, new FakeAuth()), inlineUploadBytes: 100 });
    await client.upload(new File([bytes(6)], "a"));
    expect(storage.calls).toEqual(["createUpload", "createUpload", "writeUploadChunk", "writeUploadChunk", "finishUpload"]);
    storage.calls = [];
    await client.upload(new File([bytes(2)], "b"));
    expect(storage.calls).toEqual(["createUpload"]); // 2 bytes: within the learned limit, inline
    storage.calls = [];
    await client.upload(new File([bytes(5)], "c"));
    // 5 bytes: above the learned limit, so no second inline attempt
    expect(storage.calls).toEqual(["createUpload", "writeUploadChunk", "writeUploadChunk", "finishUpload"]);
  });
});

describe("resume", () => {
  it("after a network failure asks the server and continues from committed_size", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    // The second chunk is stored but its answer is lost (the connection dropped).
    storage.beforeWrite = (n) =>
      n === 1 ? { error: new ConnectError("upstream connect error", Code.Unavailable), store: true } : undefined;
    const { client } = setup(storage);
    const content = bytes(10);
    const result = await client.upload(sliceOnlyFile(content));
    expect(storage.calls).toEqual([
      "createUpload",
      "writeUploadChunk",
      "writeUploadChunk",
      "getUpload",
      "writeUploadChunk",
      "finishUpload",
    ]);
    expect(storage.writes.map((w) => w.offset)).toEqual([0, 4, 8]); // the stored chunk is not sent again
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
  });

  it("retries a chunk the server did not store, with backoff, until it goes through", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    storage.beforeWrite = (n) =>
      n === 1 || n === 2 ? { error: new ConnectError("unavailable", Code.Unavailable), store: false } : undefined;
    const { client } = setup(storage);
    const content = bytes(9);
    const result = await client.upload(sliceOnlyFile(content));
    expect(storage.writes.map((w) => w.offset)).toEqual([0, 4, 4, 4, 8]);
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
  });

  it("gives up after maxRetries consecutive failures with an unavailable error", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    storage.beforeWrite = () => ({ error: new ConnectError("down", Code.Unavailable), store: false });
    const { client } = setup(storage);
    const err = await client.upload(sliceOnlyFile(bytes(9)), { maxRetries: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowDockError);
    expect((err as FlowDockError).kind).toBe("unavailable");
    expect(storage.writes).toHaveLength(3);
  });

  it("follows the server's committed offset on UPLOAD_OFFSET_MISMATCH", async () => {
    const storage = new FakeStorage();
    const { client } = setup(storage);
    const content = bytes(10);
    const id = storage.open(10, content.slice(0, 4));
    // Another tab wrote 4 more bytes meanwhile: this client's offset 0 is refused with the committed size.
    const result = await client.resumeUpload(id, sliceOnlyFile(content));
    expect(storage.writes.map((w) => w.offset)).toEqual([4, 8]);
    expect(result.node.id).toBe(`n-${id}`);
    storage.writes = [];
    const id2 = storage.open(10, content.slice(0, 4));
    storage.uploads.get(id2)!.upload.committedSize = 0n; // the client's view is stale
    const stale = storage.uploads.get(id2)!;
    storage.beforeWrite = (n) => {
      if (n === 0) stale.upload.committedSize = 4n; // by the time the chunk arrives, 4 bytes are in
      return undefined;
    };
    await client.resumeUpload(id2, sliceOnlyFile(content));
    expect(storage.writes.map((w) => w.offset)).toEqual([0, 4, 8]);
    expect(stale.data).toEqual(content);
  });

  it("resumeUpload sends only what the server lacks", async () => {
    const storage = new FakeStorage();
    const { client } = setup(storage);
    const content = bytes(11);
    const id = storage.open(11, content.slice(0, 8));
    const progress: number[] = [];
    await client.resumeUpload(id, sliceOnlyFile(content), { onProgress: (p) => progress.push(p.committedBytes) });
    expect(storage.writes).toEqual([{ offset: 8, length: 3 }]);
    expect(progress).toEqual([8, 11]);
    expect(storage.uploads.get(id)?.data).toEqual(content);
  });

  it("resumeUpload refuses a different file", async () => {
    const storage = new FakeStorage();
    const { client } = setup(storage);
    const id = storage.open(11);
    const err = (await client.resumeUpload(id, new File([bytes(3)], "x")).catch((e: unknown) => e)) as FlowDockError;
    expect(err.kind).toBe("invalid");
    expect(err.field).toBe("file");
    expect(storage.writes).toEqual([]);
  });
});

describe("cancel and outcomes", () => {
  it("an AbortSignal stops the upload between chunks", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    const controller = new AbortController();
    storage.beforeWrite = (n) => {
      if (n === 1) controller.abort();
      return undefined;
    };
    const { client } = setup(storage);
    const err = (await client
      .upload(sliceOnlyFile(bytes(20)), { signal: controller.signal })
      .catch((e: unknown) => e)) as FlowDockError;
    expect(err).toBeInstanceOf(FlowDockError);
    expect(err.kind).toBe("cancelled");
    expect(storage.writes.length).toBeLessThanOrEqual(2);
    expect(storage.calls).not.toContain("finishUpload");
  });

  it("an infected file ends in kind infected with the signature", async () => {
    const storage = new FakeStorage();
    storage.finish = () => ({
      state: UploadState.FAILED,
      failure: "virus found: Clamav.Test.File-6; the content was destroyed",
    });
    const { client } = setup(storage);
    const err = (await client.upload(new File([bytes(20)], "eicar.com")).catch((e: unknown) => e)) as FlowDockError;
    expect(err.kind).toBe("infected");
    expect(err.signature).toBe("Clamav.Test.File-6");
  });

  it("polls GetUpload while the server finishes a large upload", async () => {
    const storage = new FakeStorage();
    storage.finishingPolls = 2;
    const { client } = setup(storage);
    const result = await client.upload(new File([bytes(20)], "big.bin"));
    expect(storage.calls.slice(-4)).toEqual(["finishUpload", "getUpload", "getUpload", "getUpload"]);
    expect(result.node.id).toBe(`n-${result.uploadId}`);
  });

  it("download URLs are absolute on the client's origin", async () => {
    const { client } = setup();
    expect(await client.downloadUrl("file-1")).toBe("http://localhost/api/v1/download/tok-file-1");
  });
});

describe("file drop through a public link", () => {
  it("sends every call with the link's token and session, in chunks, and answers the stored file", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    const { client } = setup(storage);
    const content = bytes(10);
    const result = await client.uploadToLink("drop-token", "s1", sliceOnlyFile(content, "drop.bin"));
    expect(storage.linkUploadCalls.map((c) => c.method)).toEqual([
      "createLinkUpload",
      "writeLinkUploadChunk",
      "writeLinkUploadChunk",
      "writeLinkUploadChunk",
      "finishLinkUpload",
    ]);
    expect(storage.linkUploadCalls.every((c) => c.token === "drop-token" && c.session === "s1")).toBe(true);
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
    expect(result.node).toBeUndefined(); // the visitor's answer does not name the stored file
    // The account's own upload path was not used.
    expect(storage.calls).not.toContain("getUpload");
  });

  it("a small file goes in one call", async () => {
    const { client, storage } = setup();
    const result = await client.uploadToLink("drop-token", "s1", new File([bytes(5)], "small.txt"));
    expect(storage.linkUploadCalls.map((c) => c.method)).toEqual(["createLinkUpload"]);
    expect(result.node?.size).toBe(5n);
  });

  it("after a network failure sends the chunk again and follows the offset the server names", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    // The second chunk is stored but its answer is lost: the resend is refused with the committed offset.
    storage.beforeWrite = (n) => (n === 1 ? { error: new ConnectError("reset", Code.Unavailable), store: true } : undefined);
    const { client } = setup(storage);
    const content = bytes(10);
    const result = await client.uploadToLink("drop-token", "s1", sliceOnlyFile(content));
    expect(storage.writes.map((w) => w.offset)).toEqual([0, 4, 4, 8]);
    expect(storage.uploads.get(result.uploadId)?.data).toEqual(content);
  });

  it("a revoked link ends the upload with not_found", async () => {
    const { client } = setup();
    await expect(client.uploadToLink("gone", "s1", new File([bytes(5)], "a.txt"))).rejects.toMatchObject({ kind: "not_found" });
  });

  it("a large file still being verified answers without a node (there is no call to poll)", async () => {
    const storage = new FakeStorage();
    storage.inlineLimit = 0;
    storage.finishingPolls = 3;
    const { client } = setup(storage);
    const result = await client.uploadToLink("drop-token", "s1", sliceOnlyFile(bytes(6)));
    expect(result.node).toBeUndefined();
    expect(storage.calls).not.toContain("getUpload");
  });
});
