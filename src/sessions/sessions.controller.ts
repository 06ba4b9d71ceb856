import { Controller } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { SessionEndpointsFor } from './session-endpoints';

/** Every kind at once: list (filter with `kind`), show and end any session. */
@ApiTags('sessions')
@Controller('api/v1/sessions')
export class SessionsController extends SessionEndpointsFor(undefined, 'session') {}
