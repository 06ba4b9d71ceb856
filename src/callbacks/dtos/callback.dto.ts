import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, IsUrl, IsUUID, MaxLength, ValidateIf } from 'class-validator';

/**
 * Callbacks name the session `session_id`; `terminal_id` (the Terminal Server
 * seed's name) is accepted too. One of the two is required.
 */
abstract class SessionCallbackDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'The session id.' })
  @ValidateIf((body: SessionCallbackDto) => body.terminal_id === undefined)
  @IsUUID(undefined, { message: 'session_id must be a UUID' })
  session_id?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Alias of session_id (the seed API name).' })
  @ValidateIf((body: SessionCallbackDto) => body.session_id === undefined || body.terminal_id !== undefined)
  @IsUUID(undefined, { message: 'terminal_id must be a UUID' })
  terminal_id?: string;

  get sessionId(): string {
    return (this.session_id ?? this.terminal_id)!;
  }
}

export class TunnelCallbackDto extends SessionCallbackDto {
  @ApiPropertyOptional({
    example: 'http://127.0.0.1:40123/',
    description:
      'Accepted for compatibility and ignored: the gateway reaches the session at the address the platform assigned, ' +
      'never at one the container reports.',
  })
  @IsOptional()
  @MaxLength(2048)
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  tunnel_url?: string;
}

export class StatusCallbackDto extends SessionCallbackDto {
  @ApiProperty({ enum: ['failed'], description: 'A container can only report failure; readiness is the tunnel callback.' })
  @IsIn(['failed'])
  status: 'failed';

  @ApiProperty({ maxLength: 1024 })
  @MaxLength(1024)
  @IsString()
  error_message: string;
}

export class CallbackAcceptedResponse {
  @ApiProperty({ example: 'started' })
  status: string;
}
