# One image for every modelreg process; compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir ".[server]"
ENTRYPOINT ["modelreg"]
