// Line logger: `2026-11-25T10:00:00.000Z INFO message {"json":"fields"}` to LOG_FILE and stdout.
// Writes are synchronous so a line is on disk before the response that caused it is sent (the ops
// tool's log monitor counts lines containing ERROR). If the file is removed or rotated away, the
// logger notices within a couple of seconds and reopens it at its path.
import fs from 'node:fs';
import path from 'node:path';

const LEVELS = new Set(['DEBUG', 'INFO', 'WARN', 'ERROR']);

export class Logger {
  constructor({ file, stdout = true }) {
    this.file = file;
    this.stdout = stdout;
    this.fd = null;
    this.ino = null;
    this.lastCheck = 0;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.#open();
  }

  #open() {
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* already gone */ }
    }
    this.fd = fs.openSync(this.file, 'a', 0o644);
    this.ino = fs.fstatSync(this.fd).ino;
  }

  #reopenIfMoved() {
    const now = Date.now();
    if (now - this.lastCheck < 2000) return;
    this.lastCheck = now;
    let ino = null;
    try { ino = fs.statSync(this.file).ino; } catch { /* deleted */ }
    if (ino !== this.ino) {
      try {
        fs.mkdirSync(path.dirname(this.file), { recursive: true });
        this.#open();
      } catch (err) {
        process.stderr.write(`cannot reopen log file ${this.file}: ${err.message}\n`);
      }
    }
  }

  log(level, message, fields) {
    if (!LEVELS.has(level)) level = 'INFO';
    let line = `${new Date().toISOString()} ${level} ${message}`;
    if (fields && Object.keys(fields).length > 0) {
      let json;
      try { json = JSON.stringify(fields); } catch { json = '{"unserializable":true}'; }
      line += ` ${json}`;
    }
    line += '\n';
    this.#reopenIfMoved();
    try {
      fs.writeSync(this.fd, line);
    } catch (err) {
      process.stderr.write(`log write failed: ${err.message}\n`);
    }
    if (this.stdout) process.stdout.write(line);
  }

  info(message, fields) { this.log('INFO', message, fields); }
  warn(message, fields) { this.log('WARN', message, fields); }
  error(message, fields) { this.log('ERROR', message, fields); }

  close() {
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* ignore */ }
      this.fd = null;
    }
  }
}
