# nginx from the local Debian base image, for machines that cannot pull nginx:alpine.
#   docker build -f proxy/local.Dockerfile -t local/nginx:latest proxy
FROM local/bookworm-python:latest
RUN rm -f /etc/nginx/sites-enabled/default \
 && mkdir -p /etc/nginx/upstream \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
# SIGQUIT is nginx's graceful stop: workers finish the requests they hold.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
