import { NestApplicationOptions, ValidationPipe } from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { json, NextFunction, Request, Response } from 'express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { HttpErrorFilter, errorBody } from './common/http-error.filter';
import { BerthConfig } from './config/berth-config';
import { attachGateway } from './gateway/attach-gateway';
import { SessionGateway } from './gateway/session-gateway';

export const HTTP_APP_OPTIONS: NestApplicationOptions = { bodyParser: false };

interface BodyParserError {
  status?: number;
  type?: string;
  message?: string;
}

function bodyParserErrors(error: BodyParserError, _req: Request, res: Response, next: NextFunction): void {
  if (!error?.type || !error.status) return next(error);
  const messages: Record<string, string> = {
    'entity.parse.failed': `Request body is not valid JSON (${error.message})`,
    'entity.too.large': 'Request body is larger than 64 KiB',
    'charset.unsupported': 'Request body charset is not supported; send UTF-8',
    'encoding.unsupported': 'Request body encoding is not supported',
  };
  const status = error.status;
  res.status(status).json(errorBody(status, messages[error.type] ?? 'Malformed request body'));
}

/** Every JSON body this API takes is an object; say so rather than report array indexes as unknown fields. */
function requireObjectBody(req: Request, res: Response, next: NextFunction): void {
  if (Array.isArray(req.body)) {
    res.status(400).json(errorBody(400, 'Request body must be a JSON object'));
    return;
  }
  next();
}

/** HTTP concerns shared by the API entry point and the end-to-end tests. */
export function configureHttpApp(app: NestExpressApplication, config: BerthConfig): void {
  // Session traffic first, on the same port (RUN_GATEWAY_IN_API); the rest is the API's.
  if (config.gateway.embedded) attachGateway(app.getHttpServer(), app.get(SessionGateway));
  // Our own JSON parser (create the app with HTTP_APP_OPTIONS) so parse errors
  // get a message that says what is wrong. Requests here are small; anything
  // larger is refused before parsing.
  app.use(json({ limit: '64kb' }));
  app.use(bodyParserErrors);
  app.use(requireObjectBody);
  app.set('trust proxy', 'loopback');
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      // One readable message per problem, naming the field.
      stopAtFirstError: true,
    }),
  );
  app.useGlobalFilters(new HttpErrorFilter());
  if (config.http.corsOrigins.length > 0) app.enableCors({ origin: config.http.corsOrigins });

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Berth')
      .setDescription(
        'On-demand, isolated terminals in containers. Create a session, GET it with `?wait_seconds=30` ' +
          '(answered as soon as it is `started`), then open `tunnel_url?token=<access_token>` in a browser, ' +
          'or use `path_url` with `Authorization: Bearer <access_token>` from a program.',
      )
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'Per-session callback secret (containers only).' }, 'callback-token')
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json', yamlDocumentUrl: 'docs/openapi.yaml' });
}
