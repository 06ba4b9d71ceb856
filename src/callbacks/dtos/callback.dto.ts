import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsString, IsUrl, IsUUID, MaxLength } from 'class-validator';

export class TunnelCallbackDto {
  @ApiProperty({ format: 'uuid', description: 'The session id (named terminal_id as in the seed API).' })
  @IsUUID()
  terminal_id: string;

  @ApiProperty({ example: 'http://127.0.0.1:40123/', description: 'Where the session server listens.' })
  @MaxLength(2048)
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  tunnel_url: string;
}

export class StatusCallbackDto {
  @ApiProperty({ format: 'uuid' })
  @IsUUID()
  terminal_id: string;

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
