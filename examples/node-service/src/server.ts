import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 8080);
createServer((_request, response) => {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ status: 'ok' }));
}).listen(port);
