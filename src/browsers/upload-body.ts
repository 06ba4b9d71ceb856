import busboy from 'busboy';
import type { Request } from 'express';
import type { Readable } from 'node:stream';
import { DomainException, ErrorCode } from '../common/domain.exception';

export interface IncomingFile {
  name: string;
  stream: Readable;
  /** Known for a raw body with Content-Length; unknown for a multipart part. */
  length?: number;
}

/**
 * The file in an upload request, streamed (never buffered whole): the first
 * file part of a multipart/form-data body (busboy, the parser Nest's own
 * multer uses), or a raw body named by `?name=`. `store` consumes the stream.
 */
export async function receiveUpload<T>(req: Request, queryName: string | undefined, store: (file: IncomingFile) => Promise<T>): Promise<T> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('multipart/form-data')) {
    if (!queryName) throw new DomainException(ErrorCode.InvalidRequest, 'a raw upload needs ?name=<file name> (or send multipart/form-data)');
    const length = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    return store({ name: queryName, stream: req, length });
  }
  return new Promise<T>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, limits: { files: 1, fields: 20 } });
    } catch (error) {
      reject(new DomainException(ErrorCode.InvalidRequest, `malformed multipart body: ${(error as Error).message}`));
      return;
    }
    let handled = false;
    parser.on('file', (_field, stream, info) => {
      if (handled) return stream.resume();
      handled = true;
      store({ name: queryName ?? info.filename ?? '', stream }).then(resolve, (error) => {
        stream.resume();
        reject(error);
      });
    });
    parser.on('error', (error: Error) => reject(new DomainException(ErrorCode.InvalidRequest, `malformed multipart body: ${error.message}`)));
    parser.on('close', () => {
      if (!handled) reject(new DomainException(ErrorCode.InvalidRequest, 'the multipart body has no file part'));
    });
    req.pipe(parser);
  });
}
