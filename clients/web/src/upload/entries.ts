/** Turns what was dropped or picked into files with their path inside the dropped folder. */

export interface PickedFile {
  file: File;
  /** "folder/sub/name.txt" for files from a folder; empty for a loose file. */
  relativePath: string;
}

export interface PickedFailure {
  path: string;
  reason: string;
}

export interface Picked {
  files: PickedFile[];
  failures: PickedFailure[];
}

/** Files from <input type=file> (with webkitdirectory, webkitRelativePath keeps the folder structure). */
export function fromInput(list: FileList | null): Picked {
  const files = Array.from(list ?? []).map((file) => ({ file, relativePath: file.webkitRelativePath || '' }));
  return { files, failures: [] };
}

function readAll(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => {
    const all: FileSystemEntry[] = [];
    const next = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) resolve(all);
        else {
          all.push(...batch);
          next(); // readEntries answers at most 100 at a time
        }
      }, reject);
    next();
  });
}

function entryFile(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function walk(entry: FileSystemEntry, path: string, out: Picked): Promise<void> {
  if (entry.isFile) {
    try {
      out.files.push({ file: await entryFile(entry as FileSystemFileEntry), relativePath: path });
    } catch {
      out.failures.push({ path, reason: 'The browser could not read this file.' });
    }
  } else if (entry.isDirectory) {
    try {
      const children = await readAll((entry as FileSystemDirectoryEntry).createReader());
      for (const child of children) await walk(child, `${path}/${child.name}`, out);
    } catch {
      out.failures.push({ path, reason: 'The browser could not read this folder.' });
    }
  }
}

/** Files from a drop: folders are walked (webkitGetAsEntry), so their structure is kept. */
export async function fromDrop(data: DataTransfer): Promise<Picked> {
  const out: Picked = { files: [], failures: [] };
  const entries: { entry: FileSystemEntry | null; file: File | null }[] = Array.from(data.items)
    .filter((item) => item.kind === 'file')
    .map((item) => ({ entry: item.webkitGetAsEntry?.() ?? null, file: item.getAsFile() }));
  for (const { entry, file } of entries) {
    if (entry?.isDirectory) await walk(entry, entry.name, out);
    else if (file) out.files.push({ file, relativePath: '' });
  }
  return out;
}
