import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Req, Res, StreamableFile } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiCreatedResponse,
  ApiBody,
  ApiConsumes,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiPropertyOptional,
  ApiQuery,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CreatedSessionResponse, ErrorResponse } from '../sessions/dtos/session.response';
import { SessionEndpointsFor, uuidPipe } from '../sessions/session-endpoints';
import { SessionPresenter } from '../sessions/session-presenter';
import { SessionKind, SessionStatus } from '../sessions/session-status';
import { SessionsService } from '../sessions/sessions.service';
import { CurrentPrincipal, Principal } from '../tenancy/principal';
import { BrowserFilesService, DownloadedFile } from './browser-files.service';
import { BrowserLauncher } from './browser-launcher.service';
import { CreateBrowserDto } from './create-browser.dto';
import { receiveUpload } from './upload-body';

class DownloadedFileResponse implements DownloadedFile {
  @ApiPropertyOptional({ example: 'report.pdf' })
  name: string;

  @ApiPropertyOptional({ example: 48213 })
  size: number;

  @ApiPropertyOptional({ format: 'date-time' })
  modified: string;
}

class UploadedFileResponse {
  @ApiPropertyOptional({ example: 'photo.png' })
  name: string;

  @ApiPropertyOptional({ example: '/home/berth/Uploads/photo.png', description: 'Hand this path to a file input (e.g. CDP DOM.setFileInputFiles).' })
  path: string;

  @ApiPropertyOptional({ example: 48213 })
  size: number;
}

/**
 * Browser sessions. Reading and ending are the shared session routes; this
 * adds launching and what only a browser has (screenshot, downloads, uploads).
 */
@ApiTags('browsers')
@Controller('api/v1/browsers')
export class BrowsersController extends SessionEndpointsFor(SessionKind.Browser, 'browser') {
  constructor(
    sessions: SessionsService,
    presenter: SessionPresenter,
    private readonly launcher: BrowserLauncher,
    private readonly files: BrowserFilesService,
  ) {
    super(sessions, presenter);
  }

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Launch a browser',
    description:
      'Records the session as `pending` and queues its provisioning (202). When the warm pool has a browser ready ' +
      '(no profile; headless, or headful at 1280x720), the session is that browser, already `started` (201). With a `profile` a live session already ' +
      'uses, answers 200 with that session and a new access token instead. GET it with `wait_seconds` to learn when ' +
      'it is `started`; then drive it over `cdp_url` and watch it at `live_view_url`.',
  })
  @ApiAcceptedResponse({ type: CreatedSessionResponse, description: 'A new session, being started.' })
  @ApiCreatedResponse({ type: CreatedSessionResponse, description: 'A new session, started from the warm pool.' })
  @ApiOkResponse({ type: CreatedSessionResponse, description: 'The live session of this profile, handed out again.' })
  async create(
    @CurrentPrincipal() principal: Principal,
    @Body() body: CreateBrowserDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CreatedSessionResponse> {
    const { session, accessToken, reused } = await this.launcher.launch(principal, body, idempotencyKey);
    if (reused) res.status(200);
    else if (session.status === SessionStatus.Started) res.status(201);
    return this.presenter.created(session, accessToken);
  }

  @Get(':id/screenshot')
  @ApiOperation({ summary: 'Screenshot of the current page', description: 'A PNG of the page the browser shows (the most recently active tab).' })
  @ApiProduces('image/png')
  @ApiOkResponse({ description: 'PNG image.' })
  @ApiNotFoundResponse({ type: ErrorResponse })
  async screenshot(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Res({ passthrough: true }) res: Response): Promise<StreamableFile> {
    const shot = await this.files.screenshot(principal, id);
    res.set({ ...shot.headers, 'cache-control': 'no-store' });
    return new StreamableFile(shot.body);
  }

  @Get(':id/downloads')
  @ApiOperation({ summary: 'Files the browser downloaded', description: 'Including downloads started by a client over CDP.' })
  @ApiOkResponse({ type: [DownloadedFileResponse] })
  async downloads(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string): Promise<DownloadedFile[]> {
    return this.files.downloads(principal, id);
  }

  @Get(':id/downloads/:name')
  @ApiOperation({ summary: 'Fetch a downloaded file' })
  @ApiProduces('application/octet-stream')
  @ApiNotFoundResponse({ type: ErrorResponse })
  async download(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe) id: string,
    @Param('name') name: string,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const file = await this.files.download(principal, id, name);
    res.set(file.headers);
    return new StreamableFile(file.body);
  }

  @Post(':id/uploads')
  @HttpCode(201)
  @ApiOperation({
    summary: 'Upload a file into the session',
    description:
      'Either `multipart/form-data` (the first file part; its filename is kept) or a raw body with `?name=`. ' +
      'Answers the in-container path to hand to a file input. Limited to BROWSER_MAX_UPLOAD_MB.',
  })
  @ApiConsumes('multipart/form-data', 'application/octet-stream')
  @ApiQuery({ name: 'name', required: false, description: 'File name, for a raw body.' })
  @ApiBody({ schema: { type: 'string', format: 'binary' } })
  @ApiOkResponse({ type: UploadedFileResponse })
  async upload(
    @CurrentPrincipal() principal: Principal,
    @Param('id', uuidPipe) id: string,
    @Query('name') name: string | undefined,
    @Req() req: Request,
  ): Promise<UploadedFileResponse> {
    return receiveUpload(req, name, (file) => this.files.upload(principal, id, file.name, file.stream, file.length));
  }
}
