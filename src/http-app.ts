import { INestApplication, ValidationPipe } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { HttpErrorFilter } from './common/http-error.filter';
import { BerthConfig } from './config/berth-config';

/** HTTP concerns shared by the API entry point and the end-to-end tests. */
export function configureHttpApp(app: INestApplication, config: BerthConfig): void {
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
        'On-demand, isolated terminals in containers. Create a session, poll it until `started`, ' +
          'then open `tunnel_url?token=<access_token>`.',
      )
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'Per-session callback secret (containers only).' }, 'callback-token')
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json', yamlDocumentUrl: 'docs/openapi.yaml' });
}
