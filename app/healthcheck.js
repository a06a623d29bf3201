// Docker HEALTHCHECK probe (the image has no shell or curl): exit 0 when GET /health answers 200.
import http from 'node:http';

const host = !process.env.HOST || process.env.HOST === '0.0.0.0' ? '127.0.0.1' : process.env.HOST;
const req = http.get({ host, port: Number(process.env.PORT || 3001), path: '/health', timeout: 3000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => { req.destroy(); process.exit(1); });
req.on('error', () => process.exit(1));
