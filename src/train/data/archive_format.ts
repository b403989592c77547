/**
 * An archive whose bytes are not what its format allows (bad header, truncated stream, corrupt deflate data).
 * Reported to the uploader as an unreadable archive, as opposed to errors of the machine (disk full), which are
 * not the upload's fault.
 */
export class ArchiveFormatError extends Error {
  override name = "ArchiveFormatError";
}
