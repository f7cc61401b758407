# One image for the API and the worker pools; the command picks the role.
#   docker build -t ai-gateway .
#   docker run ai-gateway                                  # API on :8000
#   docker run ai-gateway node dist/workers/main.js --backend onnx
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# onnxruntime-node's install step downloads CUDA files; the CPU binding ships in the package.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY workers ./workers
COPY shared ./shared
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY models ./models
USER node
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["node", "dist/api/main.js"]
